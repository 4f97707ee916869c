//! The daemon's listening sockets, bound before anything else starts.
//!
//! Binding last (after the journal is open and every actor runs) meant that a port already in
//! use was found with actors half started; unwinding them outside the runtime panicked. Bound
//! first, a taken port is a plain error before the journal is even opened.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

use socket2::{Domain, Protocol, Socket, Type};

/// Connections the kernel queues before the server accepts them: enough for a reconnect
/// storm of thousands of widgets (actix-web's own default).
const BACKLOG: i32 = 1024;

/// Why the configured address could not be listened on.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {cause}")]
pub struct ListenError {
    pub addr: String,
    // Not a `source`: the message already says it, and error chains would say it twice.
    cause: std::io::Error,
}

impl ListenError {
    pub fn new(addr: &str, cause: std::io::Error) -> ListenError {
        ListenError {
            addr: addr.to_string(),
            cause,
        }
    }
}

/// Binds every address `listen` resolves to (`host:port`; port 0 picks a free one); also
/// returns the first one's real address, for the log line tests and scripts read.
pub fn bind(listen: &str) -> Result<(Vec<TcpListener>, SocketAddr), ListenError> {
    let fail = |source| ListenError::new(listen, source);
    let addrs: Vec<SocketAddr> = listen.to_socket_addrs().map_err(fail)?.collect();
    let listeners = addrs
        .into_iter()
        .map(|a| socket(a).map_err(fail))
        .collect::<Result<Vec<_>, _>>()?;
    let first = listeners
        .first()
        .ok_or_else(|| fail(std::io::Error::other("the address resolves to nothing")))?
        .local_addr()
        .map_err(fail)?;
    Ok((listeners, first))
}

fn socket(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // A restarted daemon must not wait for the old connections' TIME_WAIT to pass.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_is_an_error_that_names_the_address() {
        let (_held, first) = bind("127.0.0.1:0").expect("free port");
        let port = first.port();
        assert_ne!(port, 0, "the real port, not the configured 0");
        let again = format!("127.0.0.1:{port}");
        let err = bind(&again).expect_err("the port is taken");
        assert_eq!(err.addr, again);
        assert!(
            err.to_string()
                .starts_with(&format!("cannot listen on {again}: "))
        );
    }

    #[test]
    fn an_unresolvable_address_is_an_error() {
        assert!(bind("not an address").is_err());
    }
}
