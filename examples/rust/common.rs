//! Shared set-up of the examples: a gateway whose `mock` provider is the bundled mock server,
//! so every example runs on a machine with no provider keys.

use opengateway::Gateway;
use opengateway::config::Config;
use opengateway_mock::{MockConfig, MockServer};

/// Starts the mock provider and a gateway configured with it (plus any `extra` YAML).
pub async fn demo_gateway(
    extra: &str,
) -> Result<(Gateway, MockServer), Box<dyn std::error::Error>> {
    let mock = MockServer::start(MockConfig::default()).await?;
    let yaml = format!(
        "providers:\n  mock: {{ type: openai, api_base: \"{}\", api_key: demo }}\n{extra}",
        mock.base_url()
    );
    let gateway = Gateway::from_config(Config::from_yaml(&yaml)?)?;
    Ok((gateway, mock))
}
