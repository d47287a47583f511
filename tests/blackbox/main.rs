//! Black-box suite (being written).
