//! Passing listening sockets between processes (binary upgrade).
