//! revocable-device: placeholder, see the crate's issue.
