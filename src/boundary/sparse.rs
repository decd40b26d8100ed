//! Sparse files in tar archives, in the PAX format 1.0 that GNU tar and
//! libarchive write and read: the entry's PAX header says
//! `GNU.sparse.major=1`, `GNU.sparse.minor=0`, the real name and the real
//! size, and its data starts with a map of the data runs (decimal numbers,
//! one per line: the count, then offset and length of each run), padded
//! with NULs to a 512-byte block, followed by the runs themselves.
//!
//! Owns the map's text and its limits; reading and writing the runs is the
//! callers' business.

use crate::error::{Error, Result};
use std::io::Read;

/// Data runs one entry may list when loaded. Each costs 16 bytes of host
/// memory while its entry loads.
pub(crate) const MAX_RUNS_LOADED: usize = 1 << 20;

/// Data runs one saved entry lists at most: a file with more has
/// neighbouring runs joined (the gap between them saved as zeros).
pub(crate) const MAX_RUNS_SAVED: usize = 1 << 16;

const BLOCK: usize = 512;

/// The map block of `runs`, padded to whole blocks.
pub(crate) fn encode_map(runs: &[(u64, u64)]) -> Vec<u8> {
    let mut text = format!("{}\n", runs.len());
    for (offset, len) in runs {
        text.push_str(&format!("{offset}\n{len}\n"));
    }
    let mut bytes = text.into_bytes();
    bytes.resize(bytes.len().div_ceil(BLOCK) * BLOCK, 0);
    bytes
}

/// Reads the map at the start of an entry's data: the runs, sorted and
/// within `real_size`, and the bytes the map took.
pub(crate) fn read_map(reader: &mut impl Read, real_size: u64) -> Result<(Vec<(u64, u64)>, u64)> {
    let bad = |what: &str| Error::Archive(format!("sparse map: {what}"));
    let mut numbers = MapNumbers::default();
    let mut block = [0u8; BLOCK];
    let mut taken = 0u64;
    let mut count: Option<u64> = None;
    let mut pending_offset: Option<u64> = None;
    let mut runs: Vec<(u64, u64)> = Vec::new();
    loop {
        reader
            .read_exact(&mut block)
            .map_err(|_| bad("the archive is truncated inside it"))?;
        taken += BLOCK as u64;
        for &byte in &block {
            let Some(n) = numbers.push(byte).map_err(bad)? else {
                continue;
            };
            match (count, pending_offset) {
                (None, _) => {
                    if n > MAX_RUNS_LOADED as u64 {
                        return Err(bad("more data runs than a load accepts"));
                    }
                    count = Some(n);
                }
                (Some(_), None) => pending_offset = Some(n),
                (Some(_), Some(offset)) => {
                    pending_offset = None;
                    if offset.checked_add(n).is_none_or(|end| end > real_size) {
                        return Err(bad("a run lies past the file's size"));
                    }
                    if runs.last().is_some_and(|&(o, l)| o + l > offset) {
                        return Err(bad("runs overlap or are out of order"));
                    }
                    runs.push((offset, n));
                }
            }
            if count == Some(runs.len() as u64) {
                // The rest of this block is padding.
                return Ok((runs, taken));
            }
        }
    }
}

/// Decimal numbers ended by newlines, read a byte at a time.
#[derive(Default)]
struct MapNumbers {
    value: u64,
    digits: u32,
}

impl MapNumbers {
    fn push(&mut self, byte: u8) -> std::result::Result<Option<u64>, &'static str> {
        match byte {
            b'0'..=b'9' => {
                self.digits += 1;
                self.value = self
                    .value
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u64::from(byte - b'0')))
                    .ok_or("a number is too large")?;
                Ok(None)
            }
            b'\n' if self.digits > 0 => {
                let n = self.value;
                *self = MapNumbers::default();
                Ok(Some(n))
            }
            _ => Err("it is not decimal numbers on lines of their own"),
        }
    }
}

/// At most [`MAX_RUNS_SAVED`] runs covering the runs `all` yields, which
/// it may be asked for twice (to count them, then to group them).
pub(crate) fn group_runs<I>(all: impl Fn() -> Result<I>) -> Result<Vec<(u64, u64)>>
where
    I: Iterator<Item = Result<(u64, u64)>>,
{
    let mut count = 0usize;
    for run in all()? {
        run?;
        count += 1;
    }
    let per_group = count.div_ceil(MAX_RUNS_SAVED).max(1);
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(count.min(MAX_RUNS_SAVED));
    for (i, run) in all()?.enumerate() {
        let (start, end) = run?;
        match out.last_mut() {
            Some((first, len)) if i % per_group != 0 => *len = end - *first,
            _ => out.push((start, end - start)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_reads_back_as_written_and_reports_its_length() {
        let runs = vec![(0, 10), (4096, 1), (1 << 62, 0)];
        let mut bytes = encode_map(&runs);
        assert_eq!(bytes.len(), 512);
        bytes.extend_from_slice(b"data after the map");
        let (read, taken) = read_map(&mut &bytes[..], 1 << 62).unwrap();
        assert_eq!((read, taken), (runs, 512));
    }

    #[test]
    fn bad_maps_are_refused_not_trusted() {
        let refuse = |text: &[u8], size| {
            let mut bytes = text.to_vec();
            bytes.resize(512, 0);
            read_map(&mut &bytes[..], size).unwrap_err()
        };
        refuse(b"1\n0\n20\n", 10); // past the size
        refuse(b"2\n5\n5\n0\n1\n", 100); // out of order
        refuse(b"1\n-3\n1\n", 100);
        refuse(b"99999999999999999999999\n", 100);
        refuse(format!("{}\n", MAX_RUNS_LOADED + 1).as_bytes(), 100);
        // Truncated: the count promises more than the archive holds.
        read_map(&mut &b"3\n0\n1\n"[..], 100).unwrap_err();
    }

    #[test]
    fn many_runs_are_grouped_to_the_saved_limit_and_still_cover_every_run() {
        let all: Vec<(u64, u64)> = (0..(MAX_RUNS_SAVED as u64 * 2 + 3))
            .map(|i| (i * 10, i * 10 + 3))
            .collect();
        let grouped = group_runs(|| Ok(all.iter().copied().map(Ok))).unwrap();
        assert!(grouped.len() <= MAX_RUNS_SAVED);
        let covered = |(s, e): (u64, u64)| grouped.iter().any(|&(o, l)| o <= s && e <= o + l);
        assert!(all.iter().all(|&r| covered(r)));
        let few = group_runs(|| Ok([(0, 5), (9, 10)].into_iter().map(Ok))).unwrap();
        assert_eq!(few, [(0, 5), (9, 1)]);
    }
}
