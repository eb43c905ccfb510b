//! processor Lambda (see README).
