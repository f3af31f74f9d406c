//! S3, SES, EventBridge and SQS adapters against moto, through the real SDK.

use mail_parser::MimeHeaders;
use sne_aws::testing::{MotoServer, unique_name};
use sne_aws::{EventBridgeTrigger, S3BlobStore, SesMailer};
use sne_ports::mail::{Attachment, Mail, Mailer};
use sne_ports::{BlobStore, RunTrigger, TenantId};
use std::time::Duration;

async fn blob_store() -> S3BlobStore {
    let moto = MotoServer::shared().await;
    let client = moto.s3_client().await;
    let bucket = unique_name("blobs");
    S3BlobStore::create_bucket(&client, &bucket).await.unwrap();
    S3BlobStore::new(client, bucket)
}

/// The blob conformance suite on S3, one bucket per check.
mod conformance {
    use sne_conformance::blobs::FreshBlobs;

    async fn fresh() -> FreshBlobs<sne_aws::S3BlobStore> {
        FreshBlobs::new(super::blob_store().await)
    }

    sne_conformance::blob_store_tests!(fresh);
}

#[tokio::test]
async fn presigned_url_serves_the_bytes() {
    let store = blob_store().await;
    let key = "tenants/t-2/uploads/b2.csv";
    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    store.put_blob(key, &bytes, "text/csv").await.unwrap();
    let url = store
        .download_url(key, Duration::from_secs(600))
        .await
        .unwrap()
        .expect("S3 gives a link");
    assert!(url.contains("X-Amz-Expires=600"), "{url}");
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let response = reqwest::get(&url).await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(response.bytes().await.unwrap().as_ref(), bytes.as_slice());

    let capped = store.with_max_url_expiry(Duration::from_secs(60));
    let url = capped
        .download_url(key, Duration::from_secs(3600))
        .await
        .unwrap()
        .unwrap();
    assert!(
        url.contains("X-Amz-Expires=60&") || url.ends_with("X-Amz-Expires=60"),
        "{url}"
    );
}

#[tokio::test]
async fn ses_sends_the_raw_mime_with_attachment() {
    let moto = MotoServer::shared().await;
    let sdk = moto.sdk_config().await;
    let client = aws_sdk_sesv2::Client::new(&sdk);
    let domain = format!("{}.example.com", unique_name("shop"));
    let from = format!("noreply@{domain}");
    client
        .create_email_identity()
        .email_identity(&domain)
        .send()
        .await
        .unwrap();

    let csv = "syohin_code,zaiko_su\r\nA-1,3\r\n".as_bytes().to_vec();
    let subject = format!("【スマレジtoネクストエンジン】アップロード:成功 {domain}");
    let mail = Mail {
        from: from.clone(),
        to: vec!["shop@example.com".into(), "owner@example.com".into()],
        subject: subject.clone(),
        body: "在庫数をアップロードしました。\n2 行".into(),
        attachments: vec![Attachment {
            file_name: "在庫_20261127.csv".into(),
            content_type: "text/csv".into(),
            bytes: csv.clone(),
        }],
    };
    let message_id = SesMailer::new(client).send(&mail).await.unwrap();
    assert!(!message_id.is_empty());

    let sent = moto
        .sent_emails()
        .await
        .into_iter()
        .find(|m| m.id == message_id)
        .expect("moto recorded the mail");
    assert_eq!(sent.source, from);
    assert!(sent.destinations.contains(&"shop@example.com".to_string()));
    assert!(sent.destinations.contains(&"owner@example.com".to_string()));
    let parsed = mail_parser::MessageParser::default()
        .parse(sent.raw_data.as_bytes())
        .expect("the raw mail parses");
    assert_eq!(parsed.subject(), Some(subject.as_str()));
    // Mail lines end in CRLF on the wire, whatever the body used.
    let text = parsed
        .body_text(0)
        .expect("a text body")
        .replace("\r\n", "\n");
    assert_eq!(text.trim_end(), "在庫数をアップロードしました。\n2 行");
    let attachment = parsed.attachments().next().expect("one attachment");
    assert_eq!(attachment.attachment_name(), Some("在庫_20261127.csv"));
    assert_eq!(attachment.contents(), csv.as_slice());
}

#[tokio::test]
async fn ses_refuses_an_unverified_sender() {
    let moto = MotoServer::shared().await;
    let client = aws_sdk_sesv2::Client::new(&moto.sdk_config().await);
    let mail = Mail {
        from: format!("noreply@{}.example.org", unique_name("nobody")),
        to: vec!["shop@example.com".into()],
        subject: "x".into(),
        body: "y".into(),
        attachments: vec![],
    };
    assert!(SesMailer::new(client).send(&mail).await.is_err());
}

#[tokio::test]
async fn run_request_reaches_a_rule_target() {
    let moto = MotoServer::shared().await;
    let sdk = moto.sdk_config().await;
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let bus = unique_name("bus");
    let queue_url = sqs
        .create_queue()
        .queue_name(unique_name("runs"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .and_then(|mut a| a.remove(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .unwrap();
    events.create_event_bus().name(&bus).send().await.unwrap();
    events
        .put_rule()
        .name("run-requested")
        .event_bus_name(&bus)
        .event_pattern(
            serde_json::json!({
                "source": [sne_aws::EVENT_SOURCE],
                "detail-type": [sne_aws::RUN_REQUESTED],
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule("run-requested")
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(queue_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    EventBridgeTrigger::new(events, &bus)
        .request_run(&TenantId("tenant-42".into()))
        .await
        .unwrap();

    let messages = sqs
        .receive_message()
        .queue_url(&queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let event: serde_json::Value = serde_json::from_str(messages[0].body().unwrap()).unwrap();
    assert_eq!(event["source"], sne_aws::EVENT_SOURCE);
    assert_eq!(event["detail-type"], sne_aws::RUN_REQUESTED);
    assert_eq!(event["detail"]["tenant_id"], "tenant-42");
}

#[tokio::test]
async fn a_missing_bus_is_an_error() {
    let moto = MotoServer::shared().await;
    let events = aws_sdk_eventbridge::Client::new(&moto.sdk_config().await);
    let result = EventBridgeTrigger::new(events, unique_name("no-such-bus"))
        .request_run(&TenantId("t".into()))
        .await;
    assert!(result.is_err(), "{result:?}");
}

async fn fifo_queue(sqs: &aws_sdk_sqs::Client) -> String {
    use aws_sdk_sqs::types::QueueAttributeName;
    sqs.create_queue()
        .queue_name(format!("{}.fifo", unique_name("runs")))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::ContentBasedDeduplication, "false")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

#[tokio::test]
async fn the_run_queue_keeps_one_message_per_run_and_groups_by_tenant() {
    use sne_domain::run_message::RunMessage;
    use sne_ports::RunQueue;
    let moto = MotoServer::shared().await;
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let queue_url = fifo_queue(&sqs).await;
    let queue = sne_aws::SqsRunQueue::new(sqs.clone(), &queue_url);
    let at = chrono::Utc::now();
    let quiet = Duration::from_secs(5);
    let a = TenantId("t_a".into());
    let b = TenantId("t_b".into());
    // A burst of pushes for a, in one call and in several: one run. More than
    // one SendMessageBatch's worth of schedule messages all go in.
    let burst: Vec<RunMessage> = (0..3)
        .map(|_| RunMessage::changes(a.clone(), at, quiet))
        .collect();
    queue.enqueue(&burst).await.unwrap();
    queue
        .enqueue(&[RunMessage::changes(a.clone(), at, quiet)])
        .await
        .unwrap();
    let schedule: Vec<RunMessage> = (0..12)
        .map(|n| RunMessage::schedule(TenantId(format!("t_s{n:02}")), at))
        .collect();
    queue.enqueue(&schedule).await.unwrap();
    queue
        .enqueue(&[RunMessage::now(b.clone(), at)])
        .await
        .unwrap();

    let mut got: Vec<(String, serde_json::Value)> = Vec::new();
    for _ in 0..10 {
        let out = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap();
        for m in out.messages() {
            let group = m
                .attributes()
                .and_then(|a| {
                    a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId)
                })
                .cloned()
                .unwrap_or_default();
            got.push((group, serde_json::from_str(m.body().unwrap()).unwrap()));
            sqs.delete_message()
                .queue_url(&queue_url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
        if got.len() >= 14 {
            break;
        }
    }
    got.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(got.len(), 14, "{got:?}");
    assert_eq!(
        got.iter().filter(|(g, _)| g == "t_a").count(),
        1,
        "the burst is one message"
    );
    for (group, body) in &got {
        assert_eq!(body["tenant_id"], group.as_str(), "grouped by tenant");
    }
    let b_body = &got.iter().find(|(g, _)| g == "t_b").unwrap().1;
    assert_eq!(b_body["reason"], "now");
}

#[tokio::test]
async fn a_queue_that_does_not_exist_is_an_error() {
    use sne_ports::RunQueue;
    let moto = MotoServer::shared().await;
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let queue = sne_aws::SqsRunQueue::new(
        sqs,
        format!("{}/123456789012/missing.fifo", moto.endpoint()),
    );
    let message =
        sne_domain::run_message::RunMessage::now(TenantId("t".into()), chrono::Utc::now());
    assert!(queue.enqueue(&[message]).await.is_err());
}
