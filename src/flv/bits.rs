//! A bounds-checked reader of big-endian bit fields and exp-Golomb codes, for the codec headers (SPS, AV1
//! sequence header, AudioSpecificConfig) whose fields do not sit on byte boundaries.

use crate::error::Error;

/// Reads bits most significant first; every read past the end is an `Err` naming `what`.
pub(crate) struct Bits<'a> {
    data: &'a [u8],
    /// Position in bits from the start of `data`.
    pos: usize,
    what: &'static str,
}

impl<'a> Bits<'a> {
    pub(crate) fn new(data: &'a [u8], what: &'static str) -> Self {
        Bits { data, pos: 0, what }
    }

    fn short(&self) -> Error {
        Error::MalformedFlv(format!("{} is truncated", self.what))
    }

    /// One bit.
    pub(crate) fn bit(&mut self) -> Result<bool, Error> {
        let byte = self.data.get(self.pos / 8).ok_or_else(|| self.short())?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    /// `n` bits (at most 32) as an unsigned number.
    pub(crate) fn bits(&mut self, n: u32) -> Result<u32, Error> {
        debug_assert!(n <= 32);
        let mut v: u64 = 0;
        for _ in 0..n {
            v = (v << 1) | u64::from(self.bit()?);
        }
        // At most 32 bits were read.
        Ok(v as u32)
    }

    /// Skips `n` bits.
    pub(crate) fn skip(&mut self, n: usize) -> Result<(), Error> {
        let end = self.pos.checked_add(n).ok_or_else(|| self.short())?;
        if end > self.data.len() * 8 {
            return Err(self.short());
        }
        self.pos = end;
        Ok(())
    }

    /// An unsigned exp-Golomb code, `ue(v)` of H.264/H.265. Codes longer than 32 bits are refused: no field we
    /// read can be that large, and it bounds the loop on a run of zero bits.
    pub(crate) fn ue(&mut self) -> Result<u32, Error> {
        let mut zeros = 0;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return Err(Error::MalformedFlv(format!("{}: exp-Golomb code too long", self.what)));
            }
        }
        let rest = u64::from(self.bits(zeros)?);
        let v = (1u64 << zeros) - 1 + rest;
        u32::try_from(v).map_err(|_| Error::MalformedFlv(format!("{}: exp-Golomb value too large", self.what)))
    }

    /// A signed exp-Golomb code, `se(v)`.
    pub(crate) fn se(&mut self) -> Result<i32, Error> {
        let k = i64::from(self.ue()?);
        let v = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        // |v| <= 2^31, which fits once clamped; only the most negative value could overflow.
        Ok(v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32)
    }

    /// An AV1 `uvlc()` code (a longer-ranged exp-Golomb); values beyond 32 bits are refused.
    pub(crate) fn uvlc(&mut self) -> Result<u32, Error> {
        let mut zeros = 0;
        while !self.bit()? {
            zeros += 1;
            if zeros >= 32 {
                return Err(Error::MalformedFlv(format!("{}: uvlc code too long", self.what)));
            }
        }
        let rest = u64::from(self.bits(zeros)?);
        u32::try_from((1u64 << zeros) - 1 + rest)
            .map_err(|_| Error::MalformedFlv(format!("{}: uvlc value too large", self.what)))
    }
}

/// The RBSP of a NAL unit: its bytes without the emulation-prevention `03` of every `00 00 03`. The parameter
/// sets this is used on are small (tens of bytes), so a copy is cheap; payloads are never passed through it.
pub(crate) fn unescape(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_codes() {
        // 1 | 010 | 011 | 00100 | 00101 | 1 ... : ue 0, 1, 2, 3, 4 after a leading bit.
        let data = [0b1010_0110, 0b0100_0010, 0b1100_0000];
        let mut b = Bits::new(&data, "test");
        assert!(b.bit().expect("bit"));
        assert_eq!(b.ue().expect("ue"), 1);
        assert_eq!(b.ue().expect("ue"), 2);
        assert_eq!(b.ue().expect("ue"), 3);
        assert_eq!(b.se().expect("se"), -2);
        assert!(b.bit().expect("bit"));
        assert_eq!(b.bits(6).expect("bits"), 0);
        assert!(b.bit().is_err());
        assert!(Bits::new(&[0, 0, 0, 0, 0], "zeros").ue().is_err());
        assert!(Bits::new(&[1, 2], "skip").skip(17).is_err());
    }

    #[test]
    fn unescapes_emulation_prevention() {
        assert_eq!(unescape(&[0, 0, 3, 1, 0, 0, 3, 0, 3]), [0, 0, 1, 0, 0, 0, 3]);
    }
}
