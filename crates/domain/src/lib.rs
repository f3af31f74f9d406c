//! The pure core of smaregi-ne. Nothing here performs I/O, spawns tasks or knows
//! about AWS or HTTP: every function is a plain transformation of values, so the
//! rules can be tested exhaustively and reused unchanged by every adapter.

pub mod batch;
pub mod batch_state;
pub mod change;
pub mod complete;
pub mod debounce;
pub mod division;
pub mod drift;
pub mod goods_code;
pub mod history_mode;
pub mod ids;
pub mod mapping;
pub mod orders;
pub mod outbox;
pub mod push;
pub mod que_message;
pub mod report;
pub mod row_application;
pub mod rules;
pub mod run_message;
pub mod tenant;
pub mod time;
pub mod upload_batch;
pub mod upload_csv;

pub use change::{ChangeKind, ChangeRow, StockChange};
pub use division::StockDivision;
pub use ids::{GoodsCode, ProductId, ProductPair, QueId, StoreId};
pub use tenant::TenantId;
