//! Products, prices and create-order requests (filled in below).
