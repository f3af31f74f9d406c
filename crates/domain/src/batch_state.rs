//! The life of an upload batch. Stores apply transitions as compare-and-set and
//! consult [`can_transition`], so no state is skipped and none goes back except
//! along the edges below, each of which says why it is safe.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchState {
    /// Changes are claimed; the file is being prepared under a lease.
    Building,
    /// Lines are frozen: this exact file is what will be uploaded.
    Built,
    /// Nothing to upload (all changes were 出荷, summed to zero, or parked).
    Empty,
    /// An upload call was started; its outcome is unknown until recorded.
    Uploading,
    /// NextEngine accepted the file under a `que_id`.
    Uploaded,
    Succeeded,
    Failed,
    /// The queue search after an unknown outcome was ambiguous: a person decides.
    NeedsAttention,
}

impl BatchState {
    pub fn as_str(self) -> &'static str {
        match self {
            BatchState::Building => "building",
            BatchState::Built => "built",
            BatchState::Empty => "empty",
            BatchState::Uploading => "uploading",
            BatchState::Uploaded => "uploaded",
            BatchState::Succeeded => "succeeded",
            BatchState::Failed => "failed",
            BatchState::NeedsAttention => "needs_attention",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        use BatchState::*;
        [
            Building,
            Built,
            Empty,
            Uploading,
            Uploaded,
            Succeeded,
            Failed,
            NeedsAttention,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

impl fmt::Display for BatchState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub fn can_transition(from: BatchState, to: BatchState) -> bool {
    use BatchState::*;
    matches!(
        (from, to),
        (Building, Built)
            | (Building, Empty)
            | (Built, Uploading)
            | (Uploading, Uploaded)
            // NextEngine answered with an error envelope: nothing was queued, so the
            // same frozen file may be sent again.
            | (Uploading, Built)
            | (Uploading, NeedsAttention)
            | (Uploaded, Succeeded)
            | (Uploaded, Failed)
            // A person found the queue id, or confirmed NextEngine never got the file.
            | (NeedsAttention, Uploaded)
            | (NeedsAttention, Built)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use BatchState::*;

    #[test]
    fn happy_path_is_allowed() {
        for (a, b) in [
            (Building, Built),
            (Built, Uploading),
            (Uploading, Uploaded),
            (Uploaded, Succeeded),
        ] {
            assert!(can_transition(a, b), "{a} → {b}");
        }
    }

    #[test]
    fn skipping_and_going_back_are_refused() {
        for (a, b) in [
            (Building, Uploading),
            (Built, Uploaded),
            (Built, Building),
            (Uploaded, Uploading),
            (Uploaded, Built),
            (Succeeded, Uploaded),
            (Failed, Built),
            (Empty, Built),
            (Built, Built),
        ] {
            assert!(!can_transition(a, b), "{a} → {b} must be refused");
        }
    }

    #[test]
    fn names_round_trip() {
        for s in [
            Building,
            Built,
            Empty,
            Uploading,
            Uploaded,
            Succeeded,
            Failed,
            NeedsAttention,
        ] {
            assert_eq!(BatchState::parse(s.as_str()), Some(s));
        }
    }
}
