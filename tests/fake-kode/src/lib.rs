//! fake KODE
