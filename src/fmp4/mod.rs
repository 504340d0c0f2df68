//! fmp4 (in progress)
