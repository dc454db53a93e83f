//! # lfr-identity: who is who on the bus
//!
//! Every lfr component connects to NATS as its own identity, with the rights the contract's
//! permission matrix gives it (`lfr_schemas::permissions`). This crate makes what that needs and
//! nothing else:
//!
//! - [`credentials`]: one nkey per identity. The seed goes into that component's credentials file
//!   (mode 0600, mounted into its pods only); the server's configuration holds public keys only.
//! - [`tls`]: a throw-away certificate authority and server certificate, for `lfr up`, the compose
//!   stack and the tests (a real deployment brings its own, e.g. from cert-manager).
//! - [`server`]: the NATS server configuration: TLS, one user per identity with its permissions,
//!   and JetStream's encryption at rest with its key taken from the environment.
//!
//! Why nkeys in the server configuration rather than accounts with JWTs: lfr is one application in
//! one account, and its matrix is fixed by the contract, so a static configuration says everything
//! an operator or reviewer needs to read in one file; it needs no resolver, no operator key and no
//! push of JWTs, and a component's secret never leaves it (challenge-response: the server holds
//! only public keys). An operator-mode server with JWTs works too (`.creds` files).

pub mod credentials;
pub mod server;
pub mod tls;

pub use credentials::Credentials;
pub use server::ServerConfig;
pub use tls::TlsFiles;
