//! What the bench binaries share: connections, reply checks and statistics (`shared`),
//! the CSV copies of their tables (`csv`) and backend plugins called in process
//! (`plugin`).

pub mod csv;
pub mod plugin;
pub mod shared;
