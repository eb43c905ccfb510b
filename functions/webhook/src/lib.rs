//! webhook Lambda (see README).
