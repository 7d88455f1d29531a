//! revocable-devfs: placeholder, see the crate's issue.
