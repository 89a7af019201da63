//! SPDY/3.1, the server half, as kubectl speaks it for port-forward and (before 1.30) exec/attach: the frame
//! codec ([`Decoder`], [`Encoder`]) and an async [`Session`] over any byte stream (kubectl-wire.md §3.12).
//!
//! What the client side is, is `moby/spdystream` (`spdy/read.go`, `write.go`, `types.go`): streams are opened
//! by the client with SYN_STREAM, answered with SYN_REPLY, carry DATA frames and end with a FIN flag in each
//! direction. Header blocks are one zlib stream per direction for the whole connection, preset with the
//! SPDY/3 dictionary and sync-flushed after each block. spdystream does not enforce flow control, so
//! WINDOW_UPDATE frames are read and ignored and nothing here ever waits for a window.
//!
//! The zlib backend: the SPDY dictionary has to be given to the inflater when the stream's header asks for it
//! (`Z_NEED_DICT`). flate2's default backend (miniz_oxide) has no `set_dictionary`; its pure-Rust `zlib-rs`
//! backend has it for both directions, so `apiserver/Cargo.toml` turns on flate2's `zlib-rs` feature (which
//! switches the whole build's flate2 to zlib-rs: no C library, and it is also faster for the image layers).
//! Outgoing header blocks are compressed with the same dictionary, as spdystream's own writer does
//! (`zlib.NewWriterLevelDict`); its reader (`zlib.NewReaderDict`) would also take a stream without one.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

/// The SPDY/3 header-compression dictionary (draft-mbelshe-httpbis-spdy-00 §2.6.10.1; spdystream
/// `spdy/dictionary.go`). zlib checks it by its Adler-32, so a wrong byte here fails every header block.
pub const DICTIONARY: &[u8] = b"\x00\x00\x00\x07options\x00\x00\x00\x04head\x00\x00\x00\x04post\x00\x00\x00\x03put\x00\x00\x00\x06delete\x00\x00\x00\x05trace\
\x00\x00\x00\x06accept\x00\x00\x00\x0eaccept-charset\x00\x00\x00\x0faccept-encoding\x00\x00\x00\x0faccept-language\
\x00\x00\x00\x0daccept-ranges\x00\x00\x00\x03age\x00\x00\x00\x05allow\x00\x00\x00\x0dauthorization\x00\x00\x00\x0dcache-control\
\x00\x00\x00\x0aconnection\x00\x00\x00\x0ccontent-base\x00\x00\x00\x10content-encoding\x00\x00\x00\x10content-language\
\x00\x00\x00\x0econtent-length\x00\x00\x00\x10content-location\x00\x00\x00\x0bcontent-md5\x00\x00\x00\x0dcontent-range\
\x00\x00\x00\x0ccontent-type\x00\x00\x00\x04date\x00\x00\x00\x04etag\x00\x00\x00\x06expect\x00\x00\x00\x07expires\
\x00\x00\x00\x04from\x00\x00\x00\x04host\x00\x00\x00\x08if-match\x00\x00\x00\x11if-modified-since\x00\x00\x00\x0dif-none-match\
\x00\x00\x00\x08if-range\x00\x00\x00\x13if-unmodified-since\x00\x00\x00\x0dlast-modified\x00\x00\x00\x08location\
\x00\x00\x00\x0cmax-forwards\x00\x00\x00\x06pragma\x00\x00\x00\x12proxy-authenticate\x00\x00\x00\x13proxy-authorization\
\x00\x00\x00\x05range\x00\x00\x00\x07referer\x00\x00\x00\x0bretry-after\x00\x00\x00\x06server\x00\x00\x00\x02te\
\x00\x00\x00\x07trailer\x00\x00\x00\x11transfer-encoding\x00\x00\x00\x07upgrade\x00\x00\x00\x0auser-agent\x00\x00\x00\x04vary\
\x00\x00\x00\x03via\x00\x00\x00\x07warning\x00\x00\x00\x10www-authenticate\x00\x00\x00\x06method\x00\x00\x00\x03get\
\x00\x00\x00\x06status\x00\x00\x00\x06200 OK\x00\x00\x00\x07version\x00\x00\x00\x08HTTP/1.1\x00\x00\x00\x03url\
\x00\x00\x00\x06public\x00\x00\x00\x0aset-cookie\x00\x00\x00\x0akeep-alive\x00\x00\x00\x06origin\
100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505\
203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized403 Forbidden\
404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable\
Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT\
chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,\
publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";

/// DATA and control-frame flag: the sender's half of the stream ends with this frame.
pub const FLAG_FIN: u8 = 0x01;

/// RST_STREAM status codes used here (`spdy/types.go`).
pub const RST_PROTOCOL_ERROR: u32 = 1;
pub const RST_REFUSED_STREAM: u32 = 3;
pub const RST_CANCEL: u32 = 5;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

/// The largest DATA payload we send in one frame: small enough that one stream cannot hold the connection
/// for long, big enough to keep the per-frame cost low.
pub const MAX_DATA: usize = 64 * 1024;

/// A decompressed header block can be at most this big (a guard against a zlib bomb).
const MAX_HEADER_BLOCK: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    #[error("unsupported SPDY version {0} (only 3 is spoken)")]
    Version(u16),
    #[error("invalid {kind} frame: {why}")]
    Invalid { kind: &'static str, why: &'static str },
    #[error("header block: {0}")]
    Headers(String),
    #[error("the SPDY connection is closed")]
    Closed,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Header name/value pairs; names lowercase, several values of one name joined with NUL (as on the wire).
pub type Headers = Vec<(String, String)>;

/// One SPDY/3 frame, unpacked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream { stream_id: u32, assoc_id: u32, priority: u8, flags: u8, headers: Headers },
    SynReply { stream_id: u32, flags: u8, headers: Headers },
    RstStream { stream_id: u32, status: u32 },
    /// `(flags, id, value)` entries.
    Settings { flags: u8, entries: Vec<(u8, u32, u32)> },
    Ping { id: u32 },
    GoAway { last_good: u32, status: u32 },
    Headers { stream_id: u32, flags: u8, headers: Headers },
    WindowUpdate { stream_id: u32, delta: u32 },
    Data { stream_id: u32, flags: u8, data: Bytes },
    /// A control frame of a type we do not know; the spec says to ignore it.
    Unknown { kind: u16 },
}

/// The first value of header `name` in `headers`.
pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.split('\0').next().unwrap_or(""))
}

// ---------------------------------------------------------------------------------------------
// The codec
// ---------------------------------------------------------------------------------------------

/// Reads frames from bytes as they arrive (split or coalesced at any point); owns the connection's inflate
/// context for the peer's header blocks.
pub struct Decoder {
    inflate: Decompress,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder { inflate: Decompress::new(true) }
    }

    /// The next complete frame at the front of `buf` (consumed), or None until more bytes arrive.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, SpdyError> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
        if buf.len() < 8 + len {
            buf.reserve(8 + len - buf.len());
            return Ok(None);
        }
        let mut head = buf.split_to(8);
        let mut p = buf.split_to(len).freeze();
        let first = head.get_u32();
        let flags = head[0];
        if first & 0x8000_0000 == 0 {
            return Ok(Some(Frame::Data { stream_id: first & 0x7fff_ffff, flags, data: p }));
        }
        let version = ((first >> 16) & 0x7fff) as u16;
        if version != 3 {
            return Err(SpdyError::Version(version));
        }
        let kind = (first & 0xffff) as u16;
        let need = |p: &Bytes, n: usize, kind: &'static str| {
            if p.len() < n {
                Err(SpdyError::Invalid { kind, why: "too short" })
            } else {
                Ok(())
            }
        };
        Ok(Some(match kind {
            TYPE_SYN_STREAM => {
                need(&p, 10, "SYN_STREAM")?;
                let stream_id = p.get_u32() & 0x7fff_ffff;
                let assoc_id = p.get_u32() & 0x7fff_ffff;
                let priority = p.get_u8() >> 5;
                let _slot = p.get_u8();
                let headers = self.headers(&p)?;
                Frame::SynStream { stream_id, assoc_id, priority, flags, headers }
            }
            TYPE_SYN_REPLY => {
                need(&p, 4, "SYN_REPLY")?;
                let stream_id = p.get_u32() & 0x7fff_ffff;
                Frame::SynReply { stream_id, flags, headers: self.headers(&p)? }
            }
            TYPE_HEADERS => {
                need(&p, 4, "HEADERS")?;
                let stream_id = p.get_u32() & 0x7fff_ffff;
                Frame::Headers { stream_id, flags, headers: self.headers(&p)? }
            }
            TYPE_RST_STREAM => {
                need(&p, 8, "RST_STREAM")?;
                Frame::RstStream { stream_id: p.get_u32() & 0x7fff_ffff, status: p.get_u32() }
            }
            TYPE_SETTINGS => {
                need(&p, 4, "SETTINGS")?;
                let n = p.get_u32() as usize;
                if p.len() != n * 8 {
                    return Err(SpdyError::Invalid { kind: "SETTINGS", why: "length does not match the entry count" });
                }
                let entries = (0..n)
                    .map(|_| {
                        let fid = p.get_u32();
                        ((fid >> 24) as u8, fid & 0x00ff_ffff, p.get_u32())
                    })
                    .collect();
                Frame::Settings { flags, entries }
            }
            TYPE_PING => {
                need(&p, 4, "PING")?;
                Frame::Ping { id: p.get_u32() }
            }
            TYPE_GOAWAY => {
                need(&p, 8, "GOAWAY")?;
                Frame::GoAway { last_good: p.get_u32() & 0x7fff_ffff, status: p.get_u32() }
            }
            TYPE_WINDOW_UPDATE => {
                need(&p, 8, "WINDOW_UPDATE")?;
                Frame::WindowUpdate { stream_id: p.get_u32() & 0x7fff_ffff, delta: p.get_u32() & 0x7fff_ffff }
            }
            kind => Frame::Unknown { kind },
        }))
    }

    /// Inflate one header block (the continuation of the connection's zlib stream) and parse it.
    fn headers(&mut self, block: &[u8]) -> Result<Headers, SpdyError> {
        let mut out = Vec::with_capacity(block.len() * 4 + 256);
        let mut input = block;
        loop {
            if out.capacity() - out.len() < 256 {
                out.reserve(out.capacity());
            }
            let (in0, out0) = (self.inflate.total_in(), self.inflate.total_out());
            let mut dict_set = false;
            match self.inflate.decompress_vec(input, &mut out, FlushDecompress::Sync) {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate.set_dictionary(DICTIONARY).map_err(|e| SpdyError::Headers(format!("the SPDY dictionary: {e}")))?;
                    dict_set = true;
                }
                Err(e) => return Err(SpdyError::Headers(e.to_string())),
            }
            let consumed = (self.inflate.total_in() - in0) as usize;
            let produced = self.inflate.total_out() - out0;
            input = &input[consumed..];
            if input.is_empty() && out.len() < out.capacity() && !dict_set {
                break;
            }
            if consumed == 0 && produced == 0 && !dict_set {
                return Err(SpdyError::Headers("the zlib stream does not progress".into()));
            }
            if out.len() > MAX_HEADER_BLOCK {
                return Err(SpdyError::Headers("too large".into()));
            }
        }
        parse_header_block(&out)
    }
}

fn parse_header_block(mut b: &[u8]) -> Result<Headers, SpdyError> {
    let bad = |why: &str| SpdyError::Headers(why.to_string());
    if b.is_empty() {
        return Ok(Vec::new());
    }
    if b.len() < 4 {
        return Err(bad("truncated count"));
    }
    let n = b.get_u32() as usize;
    let mut headers = Vec::with_capacity(n.min(64));
    let string = |b: &mut &[u8]| -> Result<String, SpdyError> {
        if b.len() < 4 {
            return Err(bad("truncated length"));
        }
        let len = b.get_u32() as usize;
        if b.len() < len {
            return Err(bad("truncated string"));
        }
        let s = String::from_utf8_lossy(&b[..len]).into_owned();
        b.advance(len);
        Ok(s)
    };
    for _ in 0..n {
        // spdystream refuses names that are not lowercase; be lenient and lowercase them.
        let name = string(&mut b)?.to_ascii_lowercase();
        let value = string(&mut b)?;
        headers.push((name, value));
    }
    Ok(headers)
}

/// Writes frames; owns the connection's deflate context for our header blocks.
pub struct Encoder {
    deflate: Compress,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder::new()
    }
}

impl Encoder {
    pub fn new() -> Encoder {
        let mut deflate = Compress::new(Compression::default(), true);
        deflate.set_dictionary(DICTIONARY).expect("a fresh deflate stream takes a dictionary");
        Encoder { deflate }
    }

    /// Append `frame` to `out`.
    pub fn encode(&mut self, frame: &Frame, out: &mut BytesMut) {
        let control = |out: &mut BytesMut, kind: u16, flags: u8, len: usize| {
            out.put_u16(0x8003);
            out.put_u16(kind);
            out.put_u32((u32::from(flags) << 24) | (len as u32 & 0x00ff_ffff));
        };
        match frame {
            Frame::Data { stream_id, flags, data } => {
                out.reserve(8 + data.len());
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32((u32::from(*flags) << 24) | (data.len() as u32 & 0x00ff_ffff));
                out.extend_from_slice(data);
            }
            Frame::SynStream { stream_id, assoc_id, priority, flags, headers } => {
                let block = self.header_block(headers);
                control(out, TYPE_SYN_STREAM, *flags, 10 + block.len());
                out.put_u32(*stream_id);
                out.put_u32(*assoc_id);
                out.put_u8(priority << 5);
                out.put_u8(0);
                out.extend_from_slice(&block);
            }
            Frame::SynReply { stream_id, flags, headers } => {
                let block = self.header_block(headers);
                control(out, TYPE_SYN_REPLY, *flags, 4 + block.len());
                out.put_u32(*stream_id);
                out.extend_from_slice(&block);
            }
            Frame::Headers { stream_id, flags, headers } => {
                let block = self.header_block(headers);
                control(out, TYPE_HEADERS, *flags, 4 + block.len());
                out.put_u32(*stream_id);
                out.extend_from_slice(&block);
            }
            Frame::RstStream { stream_id, status } => {
                control(out, TYPE_RST_STREAM, 0, 8);
                out.put_u32(*stream_id);
                out.put_u32(*status);
            }
            Frame::Settings { flags, entries } => {
                control(out, TYPE_SETTINGS, *flags, 4 + 8 * entries.len());
                out.put_u32(entries.len() as u32);
                for (f, id, value) in entries {
                    out.put_u32((u32::from(*f) << 24) | (id & 0x00ff_ffff));
                    out.put_u32(*value);
                }
            }
            Frame::Ping { id } => {
                control(out, TYPE_PING, 0, 4);
                out.put_u32(*id);
            }
            Frame::GoAway { last_good, status } => {
                control(out, TYPE_GOAWAY, 0, 8);
                out.put_u32(*last_good);
                out.put_u32(*status);
            }
            Frame::WindowUpdate { stream_id, delta } => {
                control(out, TYPE_WINDOW_UPDATE, 0, 8);
                out.put_u32(*stream_id);
                out.put_u32(*delta);
            }
            Frame::Unknown { kind } => control(out, *kind, 0, 0),
        }
    }

    /// `u32 count, {u32 len, name, u32 len, value}…`, deflated and sync-flushed (the peer inflates each block
    /// as it arrives).
    fn header_block(&mut self, headers: &Headers) -> Vec<u8> {
        let mut raw = BytesMut::new();
        raw.put_u32(headers.len() as u32);
        for (name, value) in headers {
            raw.put_u32(name.len() as u32);
            raw.extend_from_slice(name.to_ascii_lowercase().as_bytes());
            raw.put_u32(value.len() as u32);
            raw.extend_from_slice(value.as_bytes());
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut input = &raw[..];
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity());
            }
            let in0 = self.deflate.total_in();
            self.deflate.compress_vec(input, &mut out, FlushCompress::Sync).expect("deflate into a growing buffer");
            input = &input[(self.deflate.total_in() - in0) as usize..];
            // Done when all input is in and the flush did not run out of room.
            if input.is_empty() && out.capacity() - out.len() >= 64 {
                break;
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// The session
// ---------------------------------------------------------------------------------------------

/// How many frames may wait for the socket writer; a full queue makes senders wait (backpressure).
const OUT_QUEUE: usize = 64;
/// How many DATA payloads may wait for a stream's reader before the connection's reader waits for it.
const STREAM_QUEUE: usize = 32;
/// The writer gathers queued frames up to this many bytes into one socket write.
const WRITE_BATCH: usize = 256 * 1024;

enum Out {
    Frame(Frame),
    /// Flush what is queued, then end our side of the connection.
    Shutdown,
}

/// The server end of a SPDY connection: the streams the client opens arrive on [`Session::accept`]. Each is
/// answered with a SYN_REPLY before it is handed out (the client drops data that comes before the reply),
/// and PINGs are echoed. Dropping the session and every [`Stream`] and [`StreamWriter`] closes the connection.
pub struct Session {
    incoming: mpsc::Receiver<Stream>,
    writer: Writer,
}

/// A handle to the connection's frame writer.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Out>,
    /// Becomes true when the connection is gone (the client closed it, or a read or write failed).
    closed: watch::Receiver<bool>,
}

/// A stream the client opened.
pub struct Stream {
    pub id: u32,
    pub headers: Headers,
    data: mpsc::Receiver<Bytes>,
    writer: Writer,
}

/// Our half of one stream.
#[derive(Clone)]
pub struct StreamWriter {
    pub id: u32,
    writer: Writer,
}

impl Session {
    /// Serve SPDY on `io` (already upgraded): spawns the connection's reader and writer tasks.
    pub fn start<IO>(io: IO) -> Session
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (r, w) = tokio::io::split(io);
        let (out_tx, out_rx) = mpsc::channel(OUT_QUEUE);
        let (closed_tx, closed_rx) = watch::channel(false);
        let closed_tx = std::sync::Arc::new(closed_tx);
        let writer = Writer { tx: out_tx, closed: closed_rx };
        let (in_tx, in_rx) = mpsc::channel(16);
        tokio::spawn(write_loop(w, out_rx, closed_tx.clone()));
        tokio::spawn(read_loop(r, in_tx, writer.clone(), closed_tx));
        Session { incoming: in_rx, writer }
    }

    /// The next stream the client opens; None once the connection is closed.
    pub async fn accept(&mut self) -> Option<Stream> {
        self.incoming.recv().await
    }

    pub fn writer(&self) -> Writer {
        self.writer.clone()
    }
}

impl Writer {
    async fn send(&self, frame: Frame) -> Result<(), SpdyError> {
        self.tx.send(Out::Frame(frame)).await.map_err(|_| SpdyError::Closed)
    }

    /// Flush what was sent, then end our side of the connection (the client sees EOF).
    pub async fn shutdown(&self) {
        let _ = self.tx.send(Out::Shutdown).await;
    }

    /// Resolves when the connection is gone.
    pub async fn closed(&self) {
        let mut c = self.closed.clone();
        let _ = c.wait_for(|c| *c).await;
    }

    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }
}

impl Stream {
    /// The first value of header `name` (`streamtype`, `port`, `requestid`…).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The next chunk of the client's data; None after its FIN, a reset, or the end of the connection.
    pub async fn recv(&mut self) -> Option<Bytes> {
        self.data.recv().await
    }

    pub fn writer(&self) -> StreamWriter {
        StreamWriter { id: self.id, writer: self.writer.clone() }
    }

    /// Split into the reading half and our writing half.
    pub fn split(self) -> (StreamReader, StreamWriter) {
        let w = self.writer();
        (StreamReader { data: self.data }, w)
    }
}

/// The client's half of one stream.
pub struct StreamReader {
    data: mpsc::Receiver<Bytes>,
}

impl StreamReader {
    pub async fn recv(&mut self) -> Option<Bytes> {
        self.data.recv().await
    }
}

impl StreamWriter {
    /// Send `data` (in frames of at most [`MAX_DATA`] bytes).
    pub async fn write(&self, mut data: Bytes) -> Result<(), SpdyError> {
        while !data.is_empty() {
            let chunk = data.split_to(data.len().min(MAX_DATA));
            self.writer.send(Frame::Data { stream_id: self.id, flags: 0, data: chunk }).await?;
        }
        Ok(())
    }

    /// End our half of the stream (an empty DATA frame with FIN).
    pub async fn finish(&self) -> Result<(), SpdyError> {
        self.writer.send(Frame::Data { stream_id: self.id, flags: FLAG_FIN, data: Bytes::new() }).await
    }

    /// Abort the stream.
    pub async fn reset(&self, status: u32) -> Result<(), SpdyError> {
        self.writer.send(Frame::RstStream { stream_id: self.id, status }).await
    }

    pub async fn closed(&self) {
        self.writer.closed().await
    }
}

async fn write_loop<W: AsyncWrite>(w: W, mut rx: mpsc::Receiver<Out>, closed: std::sync::Arc<watch::Sender<bool>>) {
    tokio::pin!(w);
    let mut enc = Encoder::new();
    let mut buf = BytesMut::with_capacity(WRITE_BATCH + MAX_DATA + 64);
    let mut shutdown = false;
    'outer: while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(out) = next.take() {
            match out {
                Out::Frame(f) => enc.encode(&f, &mut buf),
                Out::Shutdown => {
                    shutdown = true;
                    break;
                }
            }
            if buf.len() < WRITE_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !buf.is_empty() {
            if let Err(e) = w.write_all(&buf).await {
                tracing::debug!(error = %e, "spdy: writing to the connection");
                break 'outer;
            }
            buf.clear();
            if w.flush().await.is_err() {
                break 'outer;
            }
        }
        if shutdown {
            let _ = w.shutdown().await;
            break;
        }
    }
    let _ = closed.send(true);
}

async fn read_loop<R: AsyncRead>(r: R, incoming: mpsc::Sender<Stream>, writer: Writer, closed: std::sync::Arc<watch::Sender<bool>>) {
    tokio::pin!(r);
    let mut dec = Decoder::new();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut streams: HashMap<u32, mpsc::Sender<Bytes>> = HashMap::new();
    let mut going_away = false;
    let mut write_closed = writer.closed.clone();
    'read: loop {
        loop {
            let frame = match dec.decode(&mut buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "spdy: bad frame from the client; closing the connection");
                    let _ = writer.send(Frame::GoAway { last_good: 0, status: 1 }).await;
                    writer.shutdown().await;
                    break 'read;
                }
            };
            match frame {
                Frame::SynStream { stream_id, flags, headers, .. } => {
                    if going_away || stream_id == 0 {
                        let _ = writer.send(Frame::RstStream { stream_id, status: RST_REFUSED_STREAM }).await;
                        continue;
                    }
                    // The reply goes out before the stream is handed over, so no DATA of ours can precede it.
                    if writer.send(Frame::SynReply { stream_id, flags: 0, headers: Vec::new() }).await.is_err() {
                        break 'read;
                    }
                    let (tx, rx) = mpsc::channel(STREAM_QUEUE);
                    if flags & FLAG_FIN == 0 {
                        streams.insert(stream_id, tx);
                    }
                    let stream = Stream { id: stream_id, headers, data: rx, writer: writer.clone() };
                    if let Err(mpsc::error::SendError(s)) = incoming.send(stream).await {
                        streams.remove(&s.id);
                        let _ = writer.send(Frame::RstStream { stream_id, status: RST_REFUSED_STREAM }).await;
                    }
                }
                Frame::Data { stream_id, flags, data } => {
                    if let Some(tx) = streams.get(&stream_id) {
                        if !data.is_empty() && tx.send(data).await.is_err() {
                            // Nobody reads this stream any more: its data is dropped.
                            streams.remove(&stream_id);
                        }
                    }
                    if flags & FLAG_FIN != 0 {
                        streams.remove(&stream_id);
                    }
                }
                Frame::RstStream { stream_id, .. } => {
                    streams.remove(&stream_id);
                }
                Frame::Headers { stream_id, flags, .. } if flags & FLAG_FIN != 0 => {
                    streams.remove(&stream_id);
                }
                Frame::Ping { id } => {
                    // Only the peer's pings (odd ids from a client) are echoed; we never ping.
                    if id % 2 == 1 && writer.send(Frame::Ping { id }).await.is_err() {
                        break 'read;
                    }
                }
                Frame::GoAway { .. } => going_away = true,
                // No flow control (spdystream does not enforce it), no settings we act on.
                Frame::Settings { .. } | Frame::WindowUpdate { .. } | Frame::Headers { .. } | Frame::SynReply { .. } | Frame::Unknown { .. } => {}
            }
        }
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        tokio::select! {
            n = r.read_buf(&mut buf) => match n {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "spdy: reading from the connection");
                    break;
                }
            },
            // Our writer failed or shut down and the client does not close: stop reading too.
            () = async { let _ = write_closed.wait_for(|c| *c).await; } => {
                // Give the client a moment to see our FIN and close its side, for a clean end.
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    let mut sink = vec![0u8; 8192];
                    while let Ok(n) = r.read(&mut sink).await { if n == 0 { break } }
                }).await;
                break;
            }
        }
    }
    drop(streams);
    let _ = closed.send(true);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdrs(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn all_kinds() -> Vec<Frame> {
        vec![
            Frame::SynStream { stream_id: 1, assoc_id: 0, priority: 2, flags: FLAG_FIN, headers: hdrs(&[("streamtype", "error"), ("port", "80"), ("requestid", "0")]) },
            Frame::SynReply { stream_id: 1, flags: 0, headers: Vec::new() },
            Frame::RstStream { stream_id: 3, status: RST_CANCEL },
            Frame::Settings { flags: 0, entries: vec![(0, 7, 65536), (1, 4, 100)] },
            Frame::Ping { id: 1 },
            Frame::GoAway { last_good: 5, status: 0 },
            Frame::Headers { stream_id: 3, flags: 0, headers: hdrs(&[("x", "a\0b")]) },
            Frame::WindowUpdate { stream_id: 3, delta: 1000 },
            Frame::Data { stream_id: 3, flags: FLAG_FIN, data: Bytes::from_static(b"hello") },
            Frame::Data { stream_id: 5, flags: 0, data: Bytes::new() },
        ]
    }

    #[test]
    fn dictionary_is_the_spdy3_one() {
        assert_eq!(DICTIONARY.len(), 1423);
        // zlib identifies a dictionary by its Adler-32 (the DICTID of a stream that needs it).
        let mut c = Compress::new(Compression::default(), true);
        let mut out = Vec::with_capacity(64);
        c.set_dictionary(DICTIONARY).unwrap();
        c.compress_vec(b"x", &mut out, FlushCompress::Sync).unwrap();
        assert_eq!(&out[2..6], &adler32(DICTIONARY).to_be_bytes());
    }

    fn adler32(b: &[u8]) -> u32 {
        let (mut a, mut s) = (1u32, 0u32);
        for &x in b {
            a = (a + u32::from(x)) % 65521;
            s = (s + a) % 65521;
        }
        (s << 16) | a
    }

    #[test]
    fn frames_round_trip_split_and_coalesced() {
        let frames = all_kinds();
        let mut enc = Encoder::new();
        let mut wire = BytesMut::new();
        for f in &frames {
            enc.encode(f, &mut wire);
        }
        // Coalesced: all at once.
        let mut dec = Decoder::new();
        let mut buf = wire.clone();
        let mut got = Vec::new();
        while let Some(f) = dec.decode(&mut buf).unwrap() {
            got.push(f);
        }
        assert_eq!(got, frames);
        assert!(buf.is_empty());
        // Split: one byte at a time.
        let mut dec = Decoder::new();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in wire.iter() {
            buf.put_u8(*b);
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
    }

    #[test]
    fn wire_layout_as_spdystream() {
        let mut enc = Encoder::new();
        let mut wire = BytesMut::new();
        enc.encode(&Frame::Ping { id: 7 }, &mut wire);
        assert_eq!(&wire[..], &[0x80, 0x03, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 7]);
        wire.clear();
        enc.encode(&Frame::Data { stream_id: 3, flags: FLAG_FIN, data: Bytes::from_static(b"ab") }, &mut wire);
        assert_eq!(&wire[..], &[0, 0, 0, 3, 1, 0, 0, 2, b'a', b'b']);
    }

    #[test]
    fn header_blocks_share_one_zlib_stream_per_direction() {
        let mut enc = Encoder::new();
        let mut dec = Decoder::new();
        for i in 0..5u32 {
            let h = hdrs(&[("streamtype", "data"), ("port", "8080"), ("requestid", &i.to_string())]);
            let mut wire = BytesMut::new();
            enc.encode(&Frame::SynStream { stream_id: 2 * i + 1, assoc_id: 0, priority: 0, flags: 0, headers: h.clone() }, &mut wire);
            match dec.decode(&mut wire).unwrap().unwrap() {
                Frame::SynStream { headers, .. } => assert_eq!(headers, h),
                f => panic!("{f:?}"),
            }
        }
    }

    /// A header block as a real zlib writes it with the SPDY dictionary (Go's `zlib.NewWriterLevelDict`
    /// at best compression, here zlib-rs at level 9), FDICT set, sync-flushed; ours uses another level.
    #[test]
    fn decompresses_a_foreign_zlib_header_block() {
        let mut z = Compress::new(Compression::best(), true);
        z.set_dictionary(DICTIONARY).unwrap();
        let mut raw = BytesMut::new();
        raw.put_u32(3);
        for (k, v) in [("streamtype", "error"), ("port", "80"), ("requestid", "0")] {
            raw.put_u32(k.len() as u32);
            raw.put_slice(k.as_bytes());
            raw.put_u32(v.len() as u32);
            raw.put_slice(v.as_bytes());
        }
        let mut block = Vec::with_capacity(1024);
        z.compress_vec(&raw, &mut block, FlushCompress::Sync).unwrap();
        assert_eq!(block[0] & 0x0f, 8, "deflate");
        assert_ne!(block[1] & 0x20, 0, "FDICT is set");
        let mut frame = BytesMut::new();
        frame.put_u16(0x8003);
        frame.put_u16(1);
        frame.put_u32(10 + block.len() as u32);
        frame.put_u32(1);
        frame.put_u32(0);
        frame.put_u16(0);
        frame.put_slice(&block);
        assert_eq!(&frame[..4], &[0x80, 0x03, 0x00, 0x01], "the first bytes kubectl sends (kubectl-wire.md §3.12)");
        let f = Decoder::new().decode(&mut frame).unwrap().unwrap();
        assert_eq!(f, Frame::SynStream { stream_id: 1, assoc_id: 0, priority: 0, flags: 0, headers: hdrs(&[("streamtype", "error"), ("port", "80"), ("requestid", "0")]) });
    }

    #[test]
    fn bad_version_is_an_error() {
        let mut b = BytesMut::from(&[0x80, 0x02, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1][..]);
        assert!(matches!(Decoder::new().decode(&mut b), Err(SpdyError::Version(2))));
    }

    /// A client as spdystream: opens a stream, gets the reply first, sends data with FIN, reads ours; pings.
    #[tokio::test]
    async fn session_replies_echoes_and_carries_data() {
        let (client, server) = tokio::io::duplex(1024);
        let mut session = Session::start(server);
        let (mut cr, mut cw) = tokio::io::split(client);
        let mut enc = Encoder::new();
        let mut out = BytesMut::new();
        enc.encode(&Frame::SynStream { stream_id: 1, assoc_id: 0, priority: 0, flags: 0, headers: hdrs(&[("streamtype", "data")]) }, &mut out);
        enc.encode(&Frame::Ping { id: 1 }, &mut out);
        // A big payload, larger than the pipe, in pieces.
        let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        for chunk in big.chunks(50_000) {
            enc.encode(&Frame::Data { stream_id: 1, flags: 0, data: Bytes::copy_from_slice(chunk) }, &mut out);
        }
        enc.encode(&Frame::Data { stream_id: 1, flags: FLAG_FIN, data: Bytes::new() }, &mut out);
        let send = tokio::spawn(async move {
            cw.write_all(&out).await.unwrap();
            cw
        });
        let mut stream = session.accept().await.unwrap();
        assert_eq!(stream.header("streamtype"), Some("data"));
        let mut got = Vec::new();
        while let Some(b) = stream.recv().await {
            got.extend_from_slice(&b);
        }
        assert_eq!(got, big);
        let w = stream.writer();
        w.write(Bytes::from_static(b"pong")).await.unwrap();
        w.finish().await.unwrap();
        session.writer().shutdown().await;
        let _cw = send.await.unwrap();

        let mut dec = Decoder::new();
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        loop {
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                frames.push(f);
            }
            if cr.read_buf(&mut buf).await.unwrap() == 0 {
                break;
            }
        }
        assert_eq!(
            frames,
            vec![
                Frame::SynReply { stream_id: 1, flags: 0, headers: Vec::new() },
                Frame::Ping { id: 1 },
                Frame::Data { stream_id: 1, flags: 0, data: Bytes::from_static(b"pong") },
                Frame::Data { stream_id: 1, flags: FLAG_FIN, data: Bytes::new() },
            ]
        );
    }
}
