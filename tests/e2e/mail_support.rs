//! Mail servers for the email tests: a throwaway Dovecot (IMAP) started by the test on a
//! loopback port with its own config, users and maildir in a temp folder, and an SMTP sink
//! written here that records every mail handoffd sends.
//!
//! A missing Dovecot fails the tests, unless `HANDOFFD_SKIP_EMAIL_TESTS=1` says to skip them
//! (install it with `apt-get install -y --no-install-recommends dovecot-imapd`).

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

pub const USER: &str = "support@shop.test";
pub const PASSWORD: &str = "imap-test-secret";
/// How long a test waits for one expected mail.
pub const MAIL_WAIT: Duration = Duration::from_secs(20);

fn dovecot_binary() -> Option<PathBuf> {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join("dovecot"));
    candidates.into_iter().find(|p| p.is_file())
}

/// A Dovecot process of the test's own, stopped (by its pid) when dropped.
pub struct Dovecot {
    /// IMAP (STARTTLS offered when started with TLS).
    pub port: u16,
    /// IMAPS, when started with TLS.
    pub tls_port: Option<u16>,
    /// The private CA that signed the server certificate, when started with TLS.
    pub ca_file: Option<PathBuf>,
    dir: tempfile::TempDir,
    bin: PathBuf,
    child: Child,
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Dovecot {
    /// Starts Dovecot, or `None` when it is not installed and the skip variable is set.
    pub async fn start() -> Option<Dovecot> {
        Self::start_with(false).await
    }

    /// Starts Dovecot with TLS: a certificate for localhost and 127.0.0.1 signed by a private
    /// CA made here with openssl (which Debian's dovecot-core depends on), STARTTLS on the
    /// IMAP port and implicit TLS on a second one.
    pub async fn start_tls() -> Option<Dovecot> {
        Self::start_with(true).await
    }

    async fn start_with(tls: bool) -> Option<Dovecot> {
        let Some(bin) = dovecot_binary() else {
            if std::env::var("HANDOFFD_SKIP_EMAIL_TESTS").as_deref() == Ok("1") {
                eprintln!("dovecot is not installed and HANDOFFD_SKIP_EMAIL_TESTS=1: skipping");
                return None;
            }
            panic!(
                "dovecot is not installed: apt-get install -y --no-install-recommends dovecot-imapd \
                 (or set HANDOFFD_SKIP_EMAIL_TESTS=1 to skip the email tests)"
            );
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        for sub in ["mail", "run", "state"] {
            std::fs::create_dir_all(d.join(sub)).expect("mkdir");
        }
        // As root, Dovecot runs mail processes as `nobody` (it refuses uid 0): they must be able
        // to reach and write the maildir. As another user, everything runs as that user.
        let uid = unsafe { libc::getuid() };
        let user_section = if uid == 0 {
            set_mode(d, 0o755);
            set_mode(&d.join("mail"), 0o777);
            "uid=nobody gid=nogroup".to_string()
        } else {
            let gid = unsafe { libc::getgid() };
            format!("uid={uid} gid={gid}")
        };
        // Not root: every Dovecot process runs as this user and group (checked by hand as
        // `nobody`; the tests themselves run as root in CI).
        let run_as = if uid == 0 {
            String::new()
        } else {
            let id = |flag: &str| {
                Command::new("id")
                    .arg(flag)
                    .output()
                    .ok()
                    .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                    .unwrap_or_default()
            };
            let (user, group) = (id("-un"), id("-gn"));
            format!(
                "default_login_user = {user}\ndefault_internal_user = {user}\n\
                 default_internal_group = {group}\n"
            )
        };
        std::fs::write(d.join("users"), format!("{USER}:{{PLAIN}}{PASSWORD}\n")).expect("users");
        set_mode(&d.join("users"), 0o644);
        let port = free_port();
        let (tls_port, ca_file, ssl) = if tls {
            let ca = make_certificates(d);
            let tls_port = free_port();
            let ssl = format!(
                "ssl = yes\nssl_cert = <{d}/server.pem\nssl_key = <{d}/server.key\n",
                d = d.display()
            );
            (Some(tls_port), Some(ca), ssl)
        } else {
            (None, None, "ssl = no\n".to_string())
        };
        let imaps = tls_port.map_or("port = 0".to_string(), |p| {
            format!("address = 127.0.0.1\n    port = {p}")
        });
        let conf = format!(
            r#"protocols = imap
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
{ssl}disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{d}/mail/%u
first_valid_uid = 1
{run_as}passdb {{
  driver = passwd-file
  args = scheme=PLAIN {d}/users
}}
userdb {{
  driver = static
  args = {user_section} home={d}/mail/%u
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    {imaps}
  }}
}}
"#,
            d = d.display()
        );
        let conf_path = d.join("dovecot.conf");
        std::fs::write(&conf_path, conf).expect("write dovecot.conf");
        let child = spawn(&bin, &conf_path);
        let dovecot = Dovecot {
            port,
            tls_port,
            ca_file,
            dir,
            bin,
            child,
        };
        dovecot.wait_listening().await;
        Some(dovecot)
    }

    async fn wait_listening(&self) {
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("dovecot did not listen on {}: {}", self.port, self.log());
    }

    /// Stops the server (every connection drops) and starts it again on the same port and
    /// maildir, as a server restart or a network cut would look to handoffd.
    pub async fn restart(&mut self) {
        self.stop();
        self.child = spawn(&self.bin, &self.dir.path().join("dovecot.conf"));
        self.wait_listening().await;
    }

    fn stop(&mut self) {
        // SIGTERM to the master we started; it stops its own children.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    /// Delivers a mail into the INBOX with IMAP APPEND, as a mail server would.
    pub async fn deliver(&self, raw: &str) {
        let stream = TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect to dovecot");
        let (r, mut w) = stream.into_split();
        let mut r = BufReader::new(r);
        read_until_tag(&mut r, "*").await;
        w.write_all(format!("a1 LOGIN {USER} {PASSWORD}\r\n").as_bytes())
            .await
            .expect("login");
        read_until_tag(&mut r, "a1").await;
        let bytes = raw.replace("\r\n", "\n").replace('\n', "\r\n");
        w.write_all(format!("a2 APPEND INBOX {{{}}}\r\n", bytes.len()).as_bytes())
            .await
            .expect("append");
        read_until_tag(&mut r, "+").await;
        w.write_all(bytes.as_bytes()).await.expect("literal");
        w.write_all(b"\r\n").await.expect("crlf");
        let done = read_until_tag(&mut r, "a2").await;
        assert!(done.starts_with("a2 OK"), "APPEND failed: {done}");
        let _ = w.write_all(b"a3 LOGOUT\r\n").await;
    }
}

/// Reads lines until one starts with `tag`; returns it.
async fn read_until_tag(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>, tag: &str) -> String {
    for _ in 0..100 {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(10), r.read_line(&mut line))
            .await
            .expect("IMAP answer in time")
            .expect("read IMAP");
        assert!(n > 0, "dovecot closed the connection");
        if line.starts_with(tag) {
            return line;
        }
    }
    panic!("no `{tag}` line from dovecot");
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A private CA and a server certificate for localhost and 127.0.0.1 signed by it, in `d`.
fn make_certificates(d: &Path) -> PathBuf {
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         extendedKeyUsage=serverAuth\n",
    )
    .expect("ext.cnf");
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=handoffd-test-ca",
        ],
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    ];
    for args in steps {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(d)
            .output()
            .expect("run openssl (installed with dovecot-core)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    set_mode(&d.join("server.key"), 0o644);
    d.join("ca.pem")
}

fn spawn(bin: &Path, conf: &Path) -> Child {
    Command::new(bin)
        .arg("-F")
        .arg("-c")
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start dovecot")
}

/// A mail the sink received.
#[derive(Debug, Clone)]
pub struct SunkMail {
    pub rcpt: Vec<String>,
    pub raw: String,
}

impl SunkMail {
    /// A header's raw value (unfolded), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        let msg = mail_parser::MessageParser::default().parse(self.raw.as_bytes())?;
        msg.header_raw(name)
            .map(|v| v.replace("\r\n", "").replace('\n', "").trim().to_string())
    }

    /// The decoded text body.
    pub fn body(&self) -> String {
        mail_parser::MessageParser::default()
            .parse(self.raw.as_bytes())
            .and_then(|m| m.body_text(0).map(|t| t.to_string()))
            .unwrap_or_default()
    }

    /// The message id without brackets.
    pub fn message_id(&self) -> String {
        self.header("Message-ID")
            .expect("every mail handoffd sends has a Message-ID")
            .trim_matches(['<', '>'])
            .to_string()
    }
}

/// A minimal SMTP server on loopback that accepts and records every mail.
pub struct SmtpSink {
    pub port: u16,
    rx: mpsc::UnboundedReceiver<SunkMail>,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
        let port = listener.local_addr().expect("addr").port();
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, tx).await;
                });
            }
        });
        SmtpSink { port, rx, task }
    }

    /// The next mail, or `None` if none came within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<SunkMail> {
        tokio::time::timeout(wait, self.rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next mail; fails the test if none comes.
    pub async fn next(&mut self) -> SunkMail {
        self.next_within(MAIL_WAIT)
            .await
            .expect("a mail at the SMTP sink")
    }

    /// The next mail whose body contains `text`, skipping others (returned too).
    pub async fn until_body(&mut self, text: &str) -> (SunkMail, Vec<SunkMail>) {
        let mut skipped = Vec::new();
        loop {
            let m = self.next().await;
            if m.body().contains(text) {
                return (m, skipped);
            }
            skipped.push(m);
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(stream: TcpStream, tx: mpsc::UnboundedSender<SunkMail>) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    w.write_all(b"220 sink.test ESMTP\r\n").await?;
    let mut rcpt = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let upper = line.trim_end().to_ascii_uppercase();
        let verb = upper.split_whitespace().next().unwrap_or("").to_string();
        match verb.as_str() {
            "EHLO" => {
                w.write_all(b"250-sink.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
                    .await?
            }
            "HELO" | "NOOP" => w.write_all(b"250 ok\r\n").await?,
            "MAIL" => {
                rcpt.clear();
                w.write_all(b"250 ok\r\n").await?
            }
            "RSET" => {
                rcpt.clear();
                w.write_all(b"250 ok\r\n").await?
            }
            "RCPT" => {
                let addr = line
                    .split_once(':')
                    .map(|(_, a)| a.trim().trim_matches(['<', '>']).to_string())
                    .unwrap_or_default();
                rcpt.push(addr);
                w.write_all(b"250 ok\r\n").await?
            }
            "DATA" => {
                w.write_all(b"354 go ahead\r\n").await?;
                let mut raw = String::new();
                loop {
                    let mut l = String::new();
                    if r.read_line(&mut l).await? == 0 {
                        return Ok(());
                    }
                    if l == ".\r\n" || l == ".\n" {
                        break;
                    }
                    raw.push_str(l.strip_prefix('.').unwrap_or(&l));
                }
                let _ = tx.send(SunkMail {
                    rcpt: std::mem::take(&mut rcpt),
                    raw,
                });
                w.write_all(b"250 queued\r\n").await?
            }
            "QUIT" => {
                w.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => w.write_all(b"502 not implemented\r\n").await?,
        }
    }
}

/// The `[email]` sections of a daemon config pointing at these servers; `idle = false`
/// makes the daemon poll (every second) as it would with a server without IDLE.
pub fn email_config(imap_port: u16, smtp_port: u16, idle: bool) -> String {
    email_config_with(imap_port, smtp_port, idle, "security = \"plain\"")
}

/// The same with the IMAP security lines given (security, ca_file).
pub fn email_config_with(
    imap_port: u16,
    smtp_port: u16,
    idle: bool,
    imap_security: &str,
) -> String {
    format!(
        r#"
[email]
enabled = true
address = "{USER}"
from_name = "Shop Support"

[email.imap]
host = "127.0.0.1"
port = {imap_port}
{imap_security}
username = "{USER}"
password = "{PASSWORD}"
timeout_secs = 10
reconnect_min_secs = 1
reconnect_max_secs = 2
read_backlog = true
idle = {idle}
poll_interval_secs = 1

[email.smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "plain"
timeout_secs = 10
"#
    )
}
