//! Where the tree meets the host: tar archives in and out, and copies of
//! host directories in.
//!
//! Everything here treats the tree's contents and the incoming data as
//! hostile, since a guest may have written either. Data coming in is
//! checked entry by entry, staged below the target and put in place only
//! when all of it loaded (`stage`), so a refused archive changes nothing
//! and nothing is written through a symlink or into another mount. Data
//! going out is read from node to node, in bounded chunks, with holes kept
//! as holes (`sparse`), so no tree is too deep or too sparse to save.
//! Writing host files (where a save lands) is the caller's business: the
//! command creates them exclusively, without following symlinks.
//!
//! This layer works through the namespace only, like the host API.

/// Bytes read or written at a time when data crosses the boundary, so its
/// memory never depends on file sizes.
const CHUNK: usize = 64 * 1024;

mod host_copy;
mod layer_out;
mod paths;
mod sparse;
pub(crate) mod stage;
mod tar_in;
mod tar_out;
