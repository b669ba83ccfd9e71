//! The runtime API on each `stats socket`: HAProxy's text protocol over a Unix stream
//! socket. One command line per connection (several with `;`), or interactive after
//! `prompt`; `_getsocks` hands the listening sockets to a new process (`-x`).

pub mod commands;

use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

use crate::config::{Level, StatsSocket};
use crate::engine::Engine;
use commands::Command;

/// Longest command line accepted; a longer one closes the connection.
const MAX_LINE: u64 = 64 * 1024;

/// Binds the socket (atomically replacing an older process's by rename, as HAProxy does,
/// so a binary upgrade never leaves the path missing) and serves it.
pub fn serve(
    engine: Arc<Engine>,
    sock: &StatsSocket,
    idle: Duration,
) -> io::Result<JoinHandle<()>> {
    let listener = bind_replacing(&sock.path, sock.mode)?;
    let level = sock.level;
    let expose = sock.expose_fd_listeners;
    Ok(tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let engine = engine.clone();
                    tokio::spawn(async move {
                        if let Err(e) = client(engine, stream, level, expose, idle).await {
                            tracing::debug!("runtime API client: {e}");
                        }
                    });
                }
                Err(e) => {
                    engine.note_accept_error(&e);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }))
}

fn bind_replacing(path: &Path, mode: Option<u32>) -> io::Result<UnixListener> {
    let tmp = PathBuf::from(format!("{}.{}.tmp", path.display(), std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot bind UNIX socket [{}]: {e}", path.display()),
        )
    })?;
    if let Some(m) = mode {
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(m))?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(listener)
}

async fn client(
    engine: Arc<Engine>,
    stream: UnixStream,
    level: Level,
    expose_fd: bool,
    idle: Duration,
) -> io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut interactive = false;
    loop {
        let mut line = Vec::new();
        let mut limited = (&mut reader).take(MAX_LINE);
        let read = limited.read_until(b'\n', &mut line);
        let n = match tokio::time::timeout(idle, read).await {
            Ok(r) => r?,
            Err(_) => return Ok(()),
        };
        if n == 0 {
            return Ok(());
        }
        if line.last() != Some(&b'\n') && n as u64 >= MAX_LINE {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line).to_string();
        let mut out = String::new();
        for cmd_text in commands::split_commands(&text) {
            let cmd = commands::parse(&cmd_text);
            match &cmd {
                Command::Prompt => {
                    interactive = !interactive;
                }
                Command::Quit => {
                    reader.get_mut().write_all(out.as_bytes()).await?;
                    return Ok(());
                }
                Command::GetSocks => {
                    if level < Level::Admin {
                        out.push_str("Permission denied\n");
                    } else if !expose_fd {
                        out.push_str(
                            "Permission denied: this socket lacks 'expose-fd listeners'\n",
                        );
                    } else {
                        return send_sockets(&engine, reader.into_inner()).await;
                    }
                }
                Command::Reload if level >= Level::Admin => out.push_str(&reload(&engine).await),
                _ => out.push_str(&commands::execute(&engine, &cmd, level)),
            }
            // HAProxy ends each command's output with an empty line.
            if !matches!(cmd, Command::Prompt) {
                out.push('\n');
            }
        }
        if interactive {
            out.push_str("\n> ");
        }
        reader.get_mut().write_all(out.as_bytes()).await?;
        if !interactive {
            reader.get_mut().shutdown().await?;
            return Ok(());
        }
    }
}

async fn reload(engine: &Arc<Engine>) -> String {
    match engine.reload().await {
        Ok(warnings) => {
            let mut s = String::from("Success=1\n--\n");
            for w in warnings {
                s.push_str(&format!("{w}\n"));
            }
            s
        }
        Err(e) => format!("Success=0\n--\n{e}\n"),
    }
}

async fn send_sockets(engine: &Arc<Engine>, stream: UnixStream) -> io::Result<()> {
    let listeners = engine.listening_sockets();
    let std_stream = stream.into_std()?;
    std_stream.set_nonblocking(false)?;
    std_stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    tokio::task::spawn_blocking(move || {
        let borrowed: Vec<_> = listeners
            .iter()
            .map(|(addr, tag, l)| (*addr, tag.clone(), l.as_fd()))
            .collect();
        crate::fdpass::send_listeners(&std_stream, &borrowed)
    })
    .await
    .map_err(io::Error::other)?
}
