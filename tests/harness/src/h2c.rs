//! One request over HTTP/2 cleartext with prior knowledge (h2c), the way gRPC and many service
//! clients talk to a sidecar: the fail-safe tests send spoofed routing headers this way too.

use std::net::SocketAddr;

use bytes::Bytes;

use crate::{Reply, Result};

/// Sends `method /` to `target` over h2c with `headers` (names must be lower case in HTTP/2;
/// a name given twice is sent twice) and `body`, and reads the whole reply.
pub fn request(
    target: SocketAddr,
    method: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Reply> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(target).await?;
        let (client, connection) = h2::client::handshake(tcp).await?;
        let driver = tokio::spawn(connection);
        let mut client = client.ready().await?;
        let mut builder = http::Request::builder()
            .method(method)
            .uri(format!("http://{target}/"));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let (response, mut stream) = client.send_request(builder.body(())?, body.is_none())?;
        if let Some(body) = body {
            stream.send_data(Bytes::copy_from_slice(body), true)?;
        }
        let response = response.await?;
        let status = response.status().as_u16();
        let headers = Reply::header_list(response.headers());
        let mut received = response.into_body();
        let mut bytes = Vec::new();
        while let Some(chunk) = received.data().await {
            let chunk = chunk?;
            let _ = received.flow_control().release_capacity(chunk.len());
            bytes.extend_from_slice(&chunk);
        }
        driver.abort();
        Ok(Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        })
    })
}
