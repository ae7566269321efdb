//! The store contract, run against an in-memory database and an on-disk WAL file.
