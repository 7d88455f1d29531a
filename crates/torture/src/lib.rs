//! revocable-torture: placeholder, see issue 5.
