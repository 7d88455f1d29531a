//! revocable-fops: placeholder, see the crate's issue.
