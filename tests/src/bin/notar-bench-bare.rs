//! The floor of the HTTP stack for `bench/peers.sh`: hyper on tokio (the stack notar-server
//! is built on) answering every request with the same bytes from memory, with no routing,
//! no store, no cache lookup. What notar-server costs above it is what its own work costs.
//!
//! `notar-bench-bare --listen 127.0.0.1:PORT --file BYTES [--content-type TYPE]
//! [--header 'NAME: VALUE']...`: with `--header`, the answers carry the headers notar-server
//! sends too, so that both put the same bytes on the wire.

use std::convert::Infallible;
use std::path::PathBuf;

use bytes::Bytes;
use clap::Parser;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long)]
    listen: std::net::SocketAddr,
    /// The bytes every answer carries
    #[arg(long)]
    file: PathBuf,
    #[arg(long, default_value = "application/json")]
    content_type: String,
    /// A header every answer carries besides Content-Type (`NAME: VALUE`), repeatable
    #[arg(long = "header", value_parser = parse_header)]
    headers: Vec<(String, String)>,
}

fn parse_header(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?} is not NAME: VALUE"))?;
    Ok((name.trim().to_owned(), value.trim().to_owned()))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let body = Bytes::from(std::fs::read(&args.file)?);
    let content_type = args.content_type;
    let headers = std::sync::Arc::new(args.headers);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let (body, content_type) = (body.clone(), content_type.clone());
        let headers = std::sync::Arc::clone(&headers);
        tokio::spawn(async move {
            let service = service_fn(move |_request: Request<hyper::body::Incoming>| {
                let mut response =
                    Response::builder().header("content-type", content_type.as_str());
                for (name, value) in headers.iter() {
                    response = response.header(name.as_str(), value.as_str());
                }
                let response = response.body(Full::new(body.clone()));
                async move {
                    Ok::<_, Infallible>(response.unwrap_or_else(|_| Response::new(Full::default())))
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
