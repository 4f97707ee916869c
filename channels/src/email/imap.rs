//! Inbound over IMAP: one long-lived task that logs in, selects the mailbox, reads every
//! mail after the stored cursor, then waits with IDLE (or polls when the server has no
//! IDLE) and reads again. The cursor (UIDVALIDITY, last UID) advances only after the core
//! acknowledged a mail as durable, so a crash re-reads at most the mail in flight, and the
//! core drops that duplicate by its Message-ID. Every server answer has a time limit; a lost
//! connection is retried with exponential backoff.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_imap::extensions::idle::IdleResponse;
use async_imap::{Client, Session};
use futures_util::TryStreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::EmailSettings;
use super::config::Security;
use super::ingest::{self, Ingested, Source};
use super::store::{Batch, Cursor, MailState};
use super::tls;
use crate::state::StateError;
use crate::{CoreLink, InboundError};

/// Most mails read in one round before the cursor is saved and the mailbox looked at again.
const ROUND: usize = 50;
/// How long the core may take to make one mail durable.
const CORE_WAIT: Duration = Duration::from_secs(30);

/// Why an IMAP session ended.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("IMAP: {0}")]
    Imap(#[from] async_imap::error::Error),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("login refused: {0}")]
    Login(String),
    #[error("no answer from the server within {0:?} ({1})")]
    Timeout(Duration, &'static str),
    #[error("{0}")]
    State(#[from] StateError),
    #[error("the daemon did not take mail UID {uid}: {reason}")]
    Core { uid: u32, reason: String },
}

/// Anything a session can run over: TCP, or TLS on TCP.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Debug> Io for T {}
type Stream = Box<dyn Io>;

/// The inbound side of the email channel.
pub struct ImapInbound {
    /// Server, login, mailbox and limits.
    pub settings: Arc<EmailSettings>,
    /// Cursor and threads.
    pub state: MailState,
    /// Where mail goes once read.
    pub core: CoreLink,
    /// Trusted roots besides the web PKI (from `ca_file`).
    pub extra_roots: Vec<tokio_rustls::rustls::pki_types::CertificateDer<'static>>,
}

impl ImapInbound {
    /// Runs until the process ends: sessions one after another, with backoff between them.
    pub async fn run(self) {
        let s = &self.settings.imap;
        let mut backoff = s.backoff_min;
        loop {
            let started = Instant::now();
            match self.session().await {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(host = %s.host, mailbox = %s.mailbox, error = %e, "IMAP session ended")
                }
            }
            // A session that ran a while was healthy: start the backoff over.
            if started.elapsed() > Duration::from_secs(60) {
                backoff = s.backoff_min;
            }
            tracing::debug!(?backoff, "reconnecting to IMAP");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(s.backoff_max);
        }
    }

    async fn session(&self) -> Result<(), ImapError> {
        let s = &self.settings.imap;
        let client = self.connect().await?;
        let mut session = limit(s.io_timeout, "login", async {
            client
                .login(&s.username, &s.password)
                .await
                .map_err(|(e, _)| ImapError::Login(e.to_string()))
        })
        .await?;
        let idle = limit(s.io_timeout, "capabilities", async {
            Ok(s.use_idle && session.capabilities().await?.has_str("IDLE"))
        })
        .await?;
        let mailbox = limit(s.io_timeout, "select", async {
            Ok(session.select(&s.mailbox).await?)
        })
        .await?;
        let validity = mailbox.uid_validity.unwrap_or(0);
        let mut cursor = match self.state.cursor(&s.mailbox)? {
            Some(c) if c.uid_validity == validity => c,
            Some(c) => {
                tracing::warn!(mailbox = %s.mailbox, old = c.uid_validity, new = validity,
                    "UIDVALIDITY changed: reading the mailbox again (mail already handled is recognised by its Message-ID)");
                Cursor {
                    uid_validity: validity,
                    last_uid: 0,
                }
            }
            None => {
                let last_uid = if s.read_backlog {
                    0
                } else {
                    mailbox.uid_next.unwrap_or(1).saturating_sub(1)
                };
                Cursor {
                    uid_validity: validity,
                    last_uid,
                }
            }
        };
        self.save_cursor(cursor).await?;
        tracing::info!(mailbox = %s.mailbox, uid_validity = validity, last_uid = cursor.last_uid, idle, "IMAP mailbox selected");
        loop {
            self.catch_up(&mut session, &mut cursor).await?;
            while session.unsolicited_responses.try_recv().is_ok() {}
            if idle {
                let mut handle = session.idle();
                limit(s.io_timeout, "idle", async { Ok(handle.init().await?) }).await?;
                let (wait, stop) = handle.wait_with_timeout(s.idle_renew);
                let woke = wait.await;
                drop(stop);
                // Nothing interrupts the wait but the stream ending: the connection is gone,
                // and DONE would only wait for a server that is not there.
                if let IdleResponse::ManualInterrupt = woke? {
                    return Err(ImapError::Io(std::io::ErrorKind::ConnectionAborted.into()));
                }
                session = limit(s.io_timeout, "idle done", async {
                    Ok(handle.done().await?)
                })
                .await?;
            } else {
                tokio::time::sleep(s.poll_interval).await;
                limit(s.io_timeout, "noop", async { Ok(session.noop().await?) }).await?;
            }
        }
    }

    async fn connect(&self) -> Result<Client<Stream>, ImapError> {
        let s = &self.settings.imap;
        let tcp = limit(s.io_timeout, "connect", async {
            Ok(TcpStream::connect((s.host.as_str(), s.port)).await?)
        })
        .await?;
        let stream: Stream = match s.security {
            Security::Plain | Security::StartTls => Box::new(tcp),
            Security::Tls => Box::new(self.tls(tcp).await?),
        };
        let mut client = Client::new(stream);
        limit(s.io_timeout, "greeting", async {
            match client.read_response().await? {
                Some(_) => Ok(()),
                None => Err(ImapError::Io(std::io::ErrorKind::UnexpectedEof.into())),
            }
        })
        .await?;
        if s.security == Security::StartTls {
            limit(s.io_timeout, "starttls", async {
                Ok(client.run_command_and_check_ok("STARTTLS", None).await?)
            })
            .await?;
            let plain = client.into_inner();
            client = Client::new(Box::new(self.tls(plain).await?));
        }
        Ok(client)
    }

    async fn tls<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        io: IO,
    ) -> Result<tokio_rustls::client::TlsStream<IO>, ImapError> {
        let s = &self.settings.imap;
        match tokio::time::timeout(s.io_timeout, tls::connect(&s.host, io, &self.extra_roots)).await
        {
            Ok(r) => r.map_err(ImapError::Tls),
            Err(_) => Err(ImapError::Timeout(s.io_timeout, "TLS handshake")),
        }
    }

    /// Reads every mail after the cursor, in UID order, in bounded rounds.
    async fn catch_up(
        &self,
        session: &mut Session<Stream>,
        cursor: &mut Cursor,
    ) -> Result<(), ImapError> {
        let s = &self.settings.imap;
        loop {
            let query = format!("UID {}:*", cursor.last_uid.saturating_add(1));
            let found = limit(s.io_timeout, "search", async {
                Ok(session.uid_search(&query).await?)
            })
            .await?;
            // `N:*` always matches the last mail, even below N: keep only what is new.
            let mut uids: Vec<u32> = found.into_iter().filter(|&u| u > cursor.last_uid).collect();
            if uids.is_empty() {
                return Ok(());
            }
            uids.sort_unstable();
            uids.truncate(ROUND);
            for uid in uids {
                self.read_one(session, cursor, uid).await?;
            }
        }
    }

    /// Fetches one mail, gives it to the core, then remembers it (state and cursor at once).
    async fn read_one(
        &self,
        session: &mut Session<Stream>,
        cursor: &mut Cursor,
        uid: u32,
    ) -> Result<(), ImapError> {
        let s = &self.settings.imap;
        let size = limit(s.io_timeout, "fetch size", async {
            let fetches: Vec<_> = session
                .uid_fetch(uid.to_string(), "(UID RFC822.SIZE)")
                .await?
                .try_collect()
                .await?;
            Ok(fetches.iter().find_map(|f| f.size).unwrap_or(0))
        })
        .await?;
        let header_only = size > s.max_message_bytes;
        let query = if header_only {
            "(UID BODY.PEEK[HEADER])"
        } else {
            "(UID BODY.PEEK[])"
        };
        let raw = limit(s.io_timeout, "fetch", async {
            let fetches: Vec<_> = session
                .uid_fetch(uid.to_string(), query)
                .await?
                .try_collect()
                .await?;
            Ok(fetches
                .iter()
                .find_map(|f| if header_only { f.header() } else { f.body() }.map(<[u8]>::to_vec)))
        })
        .await?;
        let next = Cursor {
            uid_validity: cursor.uid_validity,
            last_uid: uid,
        };
        let Some(raw) = raw else {
            // Expunged between search and fetch: nothing to read.
            self.save_cursor(next).await?;
            *cursor = next;
            return Ok(());
        };
        let source = Source {
            mailbox: s.mailbox.clone(),
            uid_validity: cursor.uid_validity,
            uid,
            size,
            header_only,
        };
        let threads = self.state.lock_threads().await;
        match ingest::ingest(&raw, &source, &self.settings, &self.state)? {
            Ingested::Skip(why) => {
                drop(threads);
                tracing::info!(uid, %why, "mail skipped");
            }
            Ingested::Deliver {
                inbound,
                batch,
                found,
            } => {
                // The thread is updated before the core has the mail: the answer the core
                // may send at once must already reply to this mail. Keys are derived from
                // the mail, so a mail read again updates the thread the same way.
                self.state.commit(batch).await?;
                drop(threads);
                let key = inbound.conversation_key.clone();
                let sent = tokio::time::timeout(CORE_WAIT, self.core.submit(*inbound)).await;
                let reason = match sent {
                    Ok(Ok(ack)) => {
                        tracing::debug!(uid, conversation = %ack.conversation_id, %key, ?found, duplicate = ack.duplicate, "mail taken");
                        None
                    }
                    Ok(Err(InboundError::Refused(reason))) => {
                        tracing::warn!(uid, %reason, "mail refused by the daemon; skipped");
                        None
                    }
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(_) => Some("timed out".to_string()),
                };
                // Not taken: the cursor stays, and the mail is read again after a reconnect.
                if let Some(reason) = reason {
                    return Err(ImapError::Core { uid, reason });
                }
            }
        }
        self.save_cursor(next).await?;
        *cursor = next;
        Ok(())
    }

    async fn save_cursor(&self, c: Cursor) -> Result<(), ImapError> {
        let mut b = Batch::default();
        b.cursor(&self.settings.imap.mailbox, c);
        Ok(self.state.commit(b).await?)
    }
}

/// Runs `f` with a time limit, naming what timed out.
async fn limit<T>(
    wait: Duration,
    what: &'static str,
    f: impl std::future::Future<Output = Result<T, ImapError>>,
) -> Result<T, ImapError> {
    tokio::time::timeout(wait, f)
        .await
        .map_err(|_| ImapError::Timeout(wait, what))?
}
