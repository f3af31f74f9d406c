//! The admin function's secrets come from SSM Parameter Store (moto here).

use aws_sdk_ssm::types::ParameterType;
use sne_aws::testing::MotoServer;
use sne_lambda_common::wiring::secret_from_ssm;

#[tokio::test]
async fn secure_string_parameters_are_read_decrypted_and_missing_ones_are_empty() {
    let moto = MotoServer::start().await;
    let ssm = aws_sdk_ssm::Client::new(&moto.sdk_config().await);
    ssm.put_parameter()
        .name("/smaregi-ne/nextengine-client-secret")
        .value("ne-client-secret-value")
        .r#type(ParameterType::SecureString)
        .send()
        .await
        .expect("put parameter");

    let secret = secret_from_ssm(&ssm, "/smaregi-ne/nextengine-client-secret")
        .await
        .expect("read");
    assert_eq!(secret, "ne-client-secret-value");

    // Not stored yet: the admin screen still starts, sign-in fails until it is.
    let missing = secret_from_ssm(&ssm, "/smaregi-ne/not-there")
        .await
        .expect("read");
    assert_eq!(missing, "");
}
