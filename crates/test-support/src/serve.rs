//! The service's router on a real loopback socket, as the simulators' pushes and
//! a browser reach it.

use tokio::net::TcpListener;

/// A bound socket, then the server on it; the URL is known before the Context is
/// built (its links and callback name it). The server stops when this is dropped.
pub struct Server {
    pub url: String,
    listener: Option<TcpListener>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    pub async fn bind() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        Server {
            url,
            listener: Some(listener),
            task: None,
        }
    }

    pub fn serve(&mut self, router: axum::Router) {
        let listener = self.listener.take().expect("served once");
        self.task = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        }));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}
