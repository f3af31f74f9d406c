//! Why a step of the stock path stopped short, typed, and the report section it
//! becomes: made here once for the batcher (a claim, a read or the freeze that
//! failed) and the uploader (a send, a queue search or a step that failed), so
//! neither reaches into the other and the runner only renders.

use sne_domain::report::UploadSection;
use sne_ports::StoreError;
use sne_ports::nextengine::NeError;

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// Our storage (or blob store) failed; the file, if any, waits as it is.
    #[error("{error}")]
    Store {
        batch_id: Option<String>,
        error: StoreError,
    },
    /// NextEngine failed or refused a call made for this file.
    #[error("{error}")]
    NextEngine {
        batch_id: Option<String>,
        error: NeError,
    },
    /// The history periods could not be read, so nothing may be built.
    #[error("{0}")]
    HistoryMode(NeError),
}

impl UploadError {
    pub fn store(batch_id: Option<&str>) -> impl Fn(StoreError) -> UploadError + '_ {
        move |error| UploadError::Store {
            batch_id: batch_id.map(str::to_string),
            error,
        }
    }

    pub fn next_engine(batch_id: &str) -> impl Fn(NeError) -> UploadError + '_ {
        move |error| UploadError::NextEngine {
            batch_id: Some(batch_id.to_string()),
            error,
        }
    }

    /// The run report's 「アップロード」 section for this stop.
    pub fn section(&self) -> UploadSection {
        match self {
            UploadError::Store { batch_id, error } => UploadSection::Failed {
                batch_id: batch_id.clone(),
                reason: error.to_string(),
            },
            UploadError::NextEngine { batch_id, error } => {
                section_for_ne_error(batch_id.clone(), error)
            }
            UploadError::HistoryMode(error) => UploadSection::Failed {
                batch_id: None,
                reason: error.to_string(),
            },
        }
    }
}

fn section_for_ne_error(batch_id: Option<String>, e: &NeError) -> UploadSection {
    match (e, batch_id) {
        (NeError::Token { .. }, Some(batch_id)) => UploadSection::TokenError {
            batch_id,
            detail: e.to_string(),
        },
        (NeError::Token { .. }, None) => UploadSection::TokenError {
            batch_id: String::new(),
            detail: e.to_string(),
        },
        (NeError::Suspended { .. }, batch_id) => UploadSection::Suspended {
            batch_id,
            detail: e.to_string(),
        },
        (_, batch_id) => UploadSection::Failed {
            batch_id,
            reason: e.to_string(),
        },
    }
}
