//! A guard in front of rml_rtmp's chunk parser: it follows the peer's chunk stream (headers, chunk size, message
//! lengths and types) without keeping media, and refuses what would hurt the server before rml_rtmp sees it.
//!
//! rml_rtmp's AMF0 decoder recurses once per nested object or array, so a command a few kilobytes long with
//! thousands of nested objects overflows the thread's stack, and that aborts the whole process, not one session
//! (measured: about 3,500 levels in 2 MiB release, under 1,000 in a debug build). The guard reassembles every AMF
//! message (they are small: a connect, a publish, an onMetaData), caps its length, and measures its nesting with a
//! loop before the bytes go on. It also caps the chunk streams a peer may open. It follows rml_rtmp's reading of
//! the format (extended timestamps repeated on type-3 chunks when the stream's timestamp field is 0xFFFFFF), so
//! that both see the same message boundaries.

use std::collections::HashMap;

/// The longest command or data message accepted: encoders' connect, publish and onMetaData are well under 2 KiB.
pub const MAX_AMF_MESSAGE: usize = 64 * 1024;
/// The deepest AMF0 nesting accepted: encoders send an object holding an array or two.
pub const MAX_AMF_DEPTH: usize = 16;
/// Chunk streams a peer may use: encoders use about five (control, commands, audio, video, data).
const MAX_CHUNK_STREAMS: usize = 64;
/// The chunk size before the peer sets one (the RTMP specification).
const INITIAL_CHUNK_SIZE: usize = 128;
/// A timestamp field of this value says an extended timestamp follows.
const EXTENDED: u32 = 0x00ff_ffff;

/// The message types rml_rtmp decodes as AMF0: data (15, 18) and commands (17, 20).
fn is_amf(type_id: u8) -> bool {
    matches!(type_id, 15 | 17 | 18 | 20)
}

/// What the guard knows of one chunk stream.
#[derive(Debug, Default, Clone)]
struct ChunkStream {
    length: usize,
    type_id: u8,
    timestamp_field: u32,
    /// Bytes of the current message still to come (0: the next chunk starts a message).
    remaining: usize,
    /// The message's bytes, for the types the guard reads (set chunk size, abort, AMF).
    payload: Vec<u8>,
}

/// Follows one peer's chunk stream. Feed it every byte after the handshake, in order.
#[derive(Debug)]
pub struct Guard {
    chunk_size: usize,
    streams: HashMap<u32, ChunkStream>,
    /// A chunk header not yet complete.
    header: Vec<u8>,
    /// The chunk whose payload is being read, and its bytes still to come.
    chunk: Option<(u32, usize)>,
}

impl Default for Guard {
    fn default() -> Self {
        Self { chunk_size: INITIAL_CHUNK_SIZE, streams: HashMap::new(), header: Vec::new(), chunk: None }
    }
}

impl Guard {
    /// Checks the next bytes of the stream; `Err` says why the connection should be closed.
    pub fn check(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        while !bytes.is_empty() {
            match self.chunk {
                Some((csid, left)) => {
                    let n = left.min(bytes.len());
                    let (now, rest) = bytes.split_at(n);
                    bytes = rest;
                    self.payload(csid, now)?;
                    self.chunk = (left > n).then_some((csid, left - n));
                }
                None => {
                    // Header bytes one at a time into `header` until it is whole: headers are at most 18 bytes.
                    let (&byte, rest) = bytes.split_first().ok_or("no bytes")?;
                    bytes = rest;
                    self.header.push(byte);
                    if let Some(chunk) = self.parse_header()? {
                        self.header.clear();
                        self.chunk = Some(chunk);
                        if chunk.1 == 0 {
                            self.chunk = None;
                            self.payload(chunk.0, &[])?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The chunk `header` opens, once it is whole: its chunk stream and payload length.
    fn parse_header(&mut self) -> Result<Option<(u32, usize)>, String> {
        let h = &self.header;
        let Some(&first) = h.first() else { return Ok(None) };
        let format = first >> 6;
        let (csid, basic) = match first & 0x3f {
            0 => match h.get(1) {
                Some(&b) => (64 + u32::from(b), 2),
                None => return Ok(None),
            },
            1 => match (h.get(1), h.get(2)) {
                (Some(&b1), Some(&b2)) => (64 + u32::from(b1) + 256 * u32::from(b2), 3),
                _ => return Ok(None),
            },
            id => (u32::from(id), 1),
        };
        let message_header = [11, 7, 3, 0][usize::from(format)];
        let Some(fields) = h.get(basic..basic + message_header) else { return Ok(None) };
        let u24 = |at: usize| fields.get(at..at + 3).map_or(0, |b| u32::from_be_bytes([0, b[0], b[1], b[2]]));
        let previous = match (format, self.streams.get(&csid)) {
            (0, previous) => previous.cloned().unwrap_or_default(),
            (_, Some(previous)) => previous.clone(),
            (_, None) => return Err(format!("chunk stream {csid} continued before it started")),
        };
        let timestamp_field = if format < 3 { u24(0) } else { previous.timestamp_field };
        let extended = if timestamp_field == EXTENDED { 4 } else { 0 };
        if h.len() < basic + message_header + extended {
            return Ok(None);
        }
        let mut stream = previous;
        stream.timestamp_field = timestamp_field;
        if format < 2 {
            stream.length = u24(3) as usize;
            stream.type_id = fields.get(6).copied().unwrap_or(0);
        }
        if stream.remaining == 0 {
            if is_amf(stream.type_id) && stream.length > MAX_AMF_MESSAGE {
                return Err(format!("a command or data message of {} bytes", stream.length));
            }
            stream.remaining = stream.length;
            stream.payload.clear();
        }
        let len = stream.remaining.min(self.chunk_size);
        if !self.streams.contains_key(&csid) && self.streams.len() >= MAX_CHUNK_STREAMS {
            return Err(format!("more than {MAX_CHUNK_STREAMS} chunk streams"));
        }
        self.streams.insert(csid, stream);
        Ok(Some((csid, len)))
    }

    /// Payload bytes of chunk stream `csid`; a message they complete is looked at.
    fn payload(&mut self, csid: u32, bytes: &[u8]) -> Result<(), String> {
        let stream = self.streams.get_mut(&csid).ok_or("payload of an unknown chunk stream")?;
        let kept = matches!(stream.type_id, 1 | 2) || is_amf(stream.type_id);
        if kept {
            stream.payload.extend_from_slice(bytes);
        }
        stream.remaining = stream.remaining.saturating_sub(bytes.len());
        if stream.remaining > 0 {
            return Ok(());
        }
        let payload = std::mem::take(&mut stream.payload);
        let be32 = || payload.get(..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        match stream.type_id {
            1 => {
                let size = be32().ok_or("a short set chunk size")? & 0x7fff_ffff;
                if size == 0 {
                    return Err("a chunk size of 0".to_owned());
                }
                self.chunk_size = size as usize;
            }
            2 => {
                if let Some(aborted) = be32().and_then(|id| self.streams.get_mut(&id)) {
                    aborted.remaining = 0;
                    aborted.payload.clear();
                }
            }
            17 => depth(payload.strip_prefix(&[0]).unwrap_or(&payload))?,
            t if is_amf(t) => depth(&payload)?,
            _ => {}
        }
        Ok(())
    }
}

/// What a nesting level still expects.
enum Level {
    /// Object or ECMA array: properties (a label, then a value) until an empty label and the end marker.
    Object,
    /// Strict array: this many values.
    Array(u32),
}

/// Checks that the AMF0 values in `bytes` nest at most [`MAX_AMF_DEPTH`] deep, with a loop (no recursion). It
/// stops quietly at anything it does not know or at a cut-off value: rml_rtmp refuses those itself.
fn depth(bytes: &[u8]) -> Result<(), String> {
    let mut at = 0usize;
    let mut levels: Vec<Level> = Vec::new();
    let u16_at = |at: usize| bytes.get(at..at + 2).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])));
    let u32_at = |at: usize| bytes.get(at..at + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    loop {
        // Where the next value starts, given the innermost level.
        match levels.last_mut() {
            Some(Level::Object) => {
                let Some(label) = u16_at(at) else { return Ok(()) };
                if label == 0 {
                    // The end marker (or an error rml_rtmp reports).
                    levels.pop();
                    at += 3;
                    continue;
                }
                at += 2 + label;
            }
            Some(Level::Array(0)) => {
                levels.pop();
                continue;
            }
            Some(Level::Array(n)) => *n -= 1,
            None => {}
        }
        let Some(&marker) = bytes.get(at) else { return Ok(()) };
        at += 1;
        match marker {
            0x00 => at += 8,
            0x01 => at += 1,
            0x02 => at += 2 + u16_at(at).unwrap_or(0),
            0x05 | 0x06 => {}
            0x03 => levels.push(Level::Object),
            0x08 => {
                at += 4;
                levels.push(Level::Object);
            }
            0x0a => {
                let Some(n) = u32_at(at) else { return Ok(()) };
                at += 4;
                levels.push(Level::Array(n));
            }
            _ => return Ok(()),
        }
        if levels.len() > MAX_AMF_DEPTH {
            return Err(format!("AMF nested more than {MAX_AMF_DEPTH} deep"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `depth` objects, each the value of property `a` of the one around it.
    fn nested(depth: usize) -> Vec<u8> {
        let mut v = vec![0x02, 0, 7];
        v.extend(b"connect");
        v.push(0x03);
        for _ in 1..depth {
            v.extend([0, 1, b'a', 0x03]);
        }
        for _ in 0..depth {
            v.extend([0, 0, 9]);
        }
        v
    }

    /// One message on chunk stream 3 as type-0 then type-3 chunks of `chunk` bytes.
    fn chunked(type_id: u8, payload: &[u8], chunk: usize) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut v = vec![0x03, 0, 0, 0, (len >> 16) as u8, (len >> 8) as u8, len as u8, type_id, 0, 0, 0, 0];
        for (i, piece) in payload.chunks(chunk).enumerate() {
            if i > 0 {
                v.push(0xc3);
            }
            v.extend(piece);
        }
        v
    }

    #[test]
    fn nesting_is_measured_without_recursion() {
        assert!(depth(&nested(MAX_AMF_DEPTH)).is_ok());
        assert!(depth(&nested(MAX_AMF_DEPTH + 1)).is_err());
        assert!(depth(&nested(100_000)).is_err());
        // A strict array of objects, a number, a string: three levels at most.
        let mut v = vec![0x0a, 0, 0, 0, 2, 0x03, 0, 1, b'x', 0x00];
        v.extend([0; 8]);
        v.extend([0, 0, 9, 0x02, 0, 1, b'y', 0x05]);
        assert!(depth(&v).is_ok());
    }

    #[test]
    fn a_deep_command_is_refused_in_any_split() {
        let bytes = chunked(20, &nested(5000), 128);
        for split in [1, 7, 128, 4096] {
            let mut guard = Guard::default();
            let refused = bytes.chunks(split).try_for_each(|piece| guard.check(piece));
            assert!(refused.is_err(), "split {split}");
        }
        let mut guard = Guard::default();
        assert!(guard.check(&chunked(20, &nested(3), 128)).is_ok());
        assert!(guard.check(&chunked(20, &nested(3), 128)).is_ok(), "the next message is read right too");
    }

    #[test]
    fn chunk_sizes_and_long_messages_are_followed() {
        let mut guard = Guard::default();
        // Set chunk size 4096, then a 10,000-byte video message in 4096-byte chunks, then a deep command.
        guard.check(&[0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0x10, 0]).unwrap();
        guard.check(&chunked(9, &[0x17; 10_000], 4096)).unwrap();
        assert!(guard.check(&chunked(20, &nested(100), 4096)).is_err());
        // A command longer than the cap is refused from its header.
        let mut guard = Guard::default();
        let header = [0x03, 0, 0, 0, 0x10, 0, 0, 20, 0, 0, 0, 0];
        assert!(guard.check(&header).is_err());
    }

    #[test]
    fn a_continued_stream_that_never_started_is_refused() {
        assert!(Guard::default().check(&[0xc5, 1, 2, 3]).is_err());
    }
}
