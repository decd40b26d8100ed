//! `poll_oneoff` with virtual files: fd 3 holds `data` (5 bytes), and
//! stdin is an OS pipe the host wrote `hi` into.

use vfs_test_guests::*;
use wasi::*;

fn fd_sub(userdata: u64, tag: u8, fd: Fd) -> Subscription {
    let rw = SubscriptionFdReadwrite {
        file_descriptor: fd,
    };
    let u = if tag == EVENTTYPE_FD_READ.raw() {
        SubscriptionUU { fd_read: rw }
    } else {
        SubscriptionUU { fd_write: rw }
    };
    Subscription {
        userdata,
        u: SubscriptionU { tag, u },
    }
}

fn clock_sub(userdata: u64, seconds: u64) -> Subscription {
    let clock = SubscriptionClock {
        id: CLOCKID_MONOTONIC,
        timeout: seconds * 1_000_000_000,
        precision: 0,
        flags: 0,
    };
    Subscription {
        userdata,
        u: SubscriptionU {
            tag: EVENTTYPE_CLOCK.raw(),
            u: SubscriptionUU { clock },
        },
    }
}

/// Polls and returns `(userdata, errno, type, nbytes)` per event, sorted.
fn poll(subs: &[Subscription]) -> Result<Vec<(u64, u16, u8, u64)>, Errno> {
    let mut events = vec![unsafe { std::mem::zeroed::<Event>() }; subs.len()];
    let n = unsafe { poll_oneoff(subs.as_ptr(), events.as_mut_ptr(), subs.len())? };
    let mut out: Vec<_> = events[..n]
        .iter()
        // The OS decides how many bytes it reports ready on a pipe (fd 0);
        // only that some are counts.
        .map(|e| {
            let n = e.fd_readwrite.nbytes;
            (
                e.userdata,
                e.error.raw(),
                e.type_.raw(),
                if matches!(e.userdata, 2 | 6) {
                    n.min(1)
                } else {
                    n
                },
            )
        })
        .collect();
    out.sort();
    Ok(out)
}

fn main() {
    let mut c = Checks::new();
    let file = open(DIR, "data", 0, RW, 0).unwrap();
    let read = EVENTTYPE_FD_READ.raw();
    let write = EVENTTYPE_FD_WRITE.raw();
    c.eq(
        "virtual file and stdin in one call",
        poll(&[fd_sub(1, read, file), fd_sub(2, read, 0), clock_sub(3, 60)]),
        Ok(vec![(1, 0, read, 5), (2, 0, read, 1)]),
    );
    c.eq(
        "virtual file for writing",
        poll(&[fd_sub(4, write, file), clock_sub(5, 60)]),
        Ok(vec![(4, 0, write, 0)]),
    );
    c.eq(
        "stdin alone goes to the OS",
        poll(&[fd_sub(6, read, 0)]),
        Ok(vec![(6, 0, read, 1)]),
    );
    c.eq(
        "clock alone",
        poll(&[clock_sub(7, 0)]),
        Ok(vec![(7, 0, EVENTTYPE_CLOCK.raw(), 0)]),
    );
    c.eq(
        "stdin still holds its data",
        read_stdin(),
        Ok(b"hi".to_vec()),
    );
    c.finish();
}

fn read_stdin() -> Result<Vec<u8>, Errno> {
    read(0, 16)
}
