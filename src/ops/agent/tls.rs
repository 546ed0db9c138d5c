//! TLS for the agent (server and mutual) and for asking peers: the configurations are built by
//! [`crate::tls`], which sits at the top level so that `error` can map its failures to exit codes
//! without an import cycle (`ops` imports `error`). The agent and the fleet view name it here.

pub use crate::tls::{
    client, client_config, server_config, ClientFiles, TlsError, TlsFiles, CONNECT_TIMEOUT,
    REQUEST_TIMEOUT,
};
