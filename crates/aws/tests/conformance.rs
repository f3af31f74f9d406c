//! The shared storage conformance suite on DynamoDB (moto). One moto server for
//! this binary, one table per check, and the second handle is a second SDK
//! client on the same table, as a second Lambda instance would have.

use sne_aws::DynamoStore;
use sne_aws::testing::{MotoServer, unique_name};
use sne_conformance::Fresh;

async fn fresh() -> Fresh<DynamoStore> {
    let moto = MotoServer::shared().await;
    let table = unique_name("conformance");
    let first = moto.dynamo_store(&table).await;
    let second_client = aws_sdk_dynamodb::Client::new(&moto.sdk_config().await);
    let second = DynamoStore::new(second_client, &table);
    Fresh::new(first, second)
}

/// Small transactions, so the checks cross chunk boundaries with few rows.
async fn fresh_small_transactions() -> Fresh<DynamoStore> {
    let moto = MotoServer::shared().await;
    let table = unique_name("conformance-small");
    let first = moto.dynamo_store(&table).await.with_transaction_limit(5);
    let second_client = aws_sdk_dynamodb::Client::new(&moto.sdk_config().await);
    let second = DynamoStore::new(second_client, &table).with_transaction_limit(5);
    Fresh::new(first, second)
}

sne_conformance::storage_tests!(fresh);

mod small_transactions {
    use super::*;
    sne_conformance::storage_tests!(fresh_small_transactions);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_passes() {
    sne_conformance::storage::run_all(fresh).await;
}
