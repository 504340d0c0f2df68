//! What the fuzz targets share: cutting one input into chunks, and reading a fragment's samples back.

use playlists::fmp4::{Fragment, Init};

/// Chunk lengths for feeding `len` bytes in pieces, drawn from `seed`: a mix of single bytes, small and large
/// pieces, so that every box and chunk header is seen cut at every place over many runs.
pub fn chunks(seed: u8, len: usize) -> Vec<usize> {
    let mut state = u32::from(seed).wrapping_mul(0x9e37_79b9) | 1;
    let mut out = Vec::new();
    let mut left = len;
    while left > 0 {
        // xorshift32: cheap and deterministic.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = match state % 4 {
            0 => 1,
            1 => 1 + (state >> 8) as usize % 16,
            2 => 1 + (state >> 8) as usize % 512,
            _ => 1 + (state >> 8) as usize % 8192,
        };
        let n = n.min(left);
        out.push(n);
        left -= n;
    }
    out
}

/// One sample as it reads back from a fragment: decode time, duration, sync, composition offset, bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadSample {
    /// Decode time in the track's timescale.
    pub decode_time: u64,
    /// Duration in the track's timescale.
    pub duration: u32,
    /// The sample flags.
    pub flags: u32,
    /// Composition time minus decode time.
    pub composition_offset: i64,
    /// The sample's bytes.
    pub data: Vec<u8>,
}

/// Every sample of `fragment`, per track id in `traf` order; `None` when the sample tables do not parse or a
/// decode time overflows.
pub fn samples(fragment: &Fragment, init: &Init) -> Option<Vec<(u32, Vec<ReadSample>)>> {
    let tables = fragment.sample_tables(init).ok()?;
    let mut out: Vec<(u32, Vec<ReadSample>)> = Vec::new();
    for track in &tables.tracks {
        let mut t = track.base_decode_time;
        let mut read = Vec::with_capacity(track.samples.len());
        for s in &track.samples {
            let data = fragment.bytes.get(s.offset..s.offset.checked_add(s.size as usize)?)?.to_vec();
            read.push(ReadSample {
                decode_time: t,
                duration: s.duration,
                flags: s.flags,
                composition_offset: s.composition_offset,
                data,
            });
            t = t.checked_add(u64::from(s.duration))?;
        }
        match out.iter_mut().find(|(id, _)| *id == track.track_id) {
            Some((_, all)) => all.extend(read),
            None => out.push((track.track_id, read)),
        }
    }
    Some(out)
}

/// The samples of several fragments joined per track id (the order in which track ids first appear).
pub fn joined(pieces: &[Fragment], init: &Init) -> Option<Vec<(u32, Vec<ReadSample>)>> {
    let mut out: Vec<(u32, Vec<ReadSample>)> = Vec::new();
    for piece in pieces {
        for (id, read) in samples(piece, init)? {
            match out.iter_mut().find(|(o, _)| *o == id) {
                Some((_, all)) => all.extend(read),
                None => out.push((id, read)),
            }
        }
    }
    Some(out)
}

/// `a` and `b` hold the same tracks with the same samples, whatever the order of the tracks.
pub fn same_tracks(a: &[(u32, Vec<ReadSample>)], b: &[(u32, Vec<ReadSample>)]) -> bool {
    let non_empty = |v: &[(u32, Vec<ReadSample>)]| v.iter().filter(|(_, s)| !s.is_empty()).count();
    non_empty(a) == non_empty(b)
        && a.iter().filter(|(_, s)| !s.is_empty()).all(|(id, s)| b.iter().any(|(o, t)| o == id && t == s))
}
