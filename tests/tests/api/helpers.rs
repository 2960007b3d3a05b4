use portico_api::config::ServeConfig;
use portico_api::Application;

/// A running server on a free port with a database of its own.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    _data: tempfile::TempDir,
}

pub async fn spawn_app() -> TestApp {
    let data = tempfile::tempdir().unwrap();
    let config = ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.path().to_path_buf(),
    };
    let app = Application::build(&config).await.unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until(std::future::pending()));
    TestApp {
        address,
        client: reqwest::Client::new(),
        _data: data,
    }
}
