//! Decodes `application/vnd.kubernetes.protobuf` request bodies (what kubectl's typed clients POST) into the JSON
//! form of the object, so the rest of the server only ever handles JSON.
//!
//! The body is the 4-byte magic `k8s\0` followed by a `runtime.Unknown` message whose `typeMeta` names the kind and
//! whose `raw` holds the object's own message (k8s.io/apimachinery pkg/runtime/serializer/protobuf/protobuf.go).
//! Objects are described by small static schemas (field number → JSON name and type) and one generic walker turns
//! the wire data into a `serde_json::Value`. There is no protobuf dependency: the wire format needed here is varints,
//! length-delimited fields, and skipping fixed32/fixed64 (https://protobuf.dev/programming-guides/encoding/).
//!
//! Field numbers come from the generated `.proto` files (cited at each schema):
//! - k8s.io/apimachinery `pkg/runtime/generated.proto`, `pkg/apis/meta/v1/generated.proto`,
//!   `pkg/api/resource/generated.proto`, `pkg/util/intstr/generated.proto`;
//! - k8s.io/api `core/v1/generated.proto`, `batch/v1/generated.proto`, `apps/v1/generated.proto`,
//!   `coordination/v1/generated.proto` (read from kubernetes/kubernetes `staging/src/k8s.io/api/...`).
//!
//! Presence follows the JSON form (`encoding/json` on the Go types): gogo-protobuf writes every non-pointer field,
//! even when empty (`""`, `0`, `false`, an empty `creationTimestamp {}`), so such fields are dropped when zero where
//! the Go JSON tag has `omitempty`. Pointer fields (`*bool`, `*int32`, `*string`, ...) are only written when set,
//! and fields without `omitempty` are always serialised, so both are kept whenever present, zero or not.

use serde_json::{Map, Value};

/// A body that is not Kubernetes protobuf, is malformed, or holds a kind this decoder does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProtobufError(pub String);

/// The magic prefix of Kubernetes protobuf bodies (apimachinery `protobuf.go`: `protoEncodingPrefix`).
const MAGIC: &[u8; 4] = b"k8s\0";

/// The content type whose bodies carry the magic; the only `contentType` an envelope may name.
const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// True if the body starts with the k8s protobuf magic.
pub fn is_k8s_protobuf(body: &[u8]) -> bool {
    body.starts_with(MAGIC)
}

/// Decode a `k8s\0` envelope into the object's JSON form, with "apiVersion" and "kind" from its typeMeta.
/// Supports the kinds k1s serves that typed clients create: v1 Namespace, ConfigMap, Secret, Pod, Event, Node,
/// batch/v1 Job, coordination.k8s.io/v1 Lease, and apps/v1 Deployment and ReplicaSet; and DeleteOptions, the body
/// of a typed client's DELETE. Any other kind → ProtobufError
/// saying the kind is not supported in protobuf and to send JSON. Unknown field numbers inside a supported message
/// are skipped (forward compatibility), but malformed wire data → ProtobufError.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let Some(envelope) = body.strip_prefix(MAGIC) else {
        return Err(ProtobufError(
            "body is not Kubernetes protobuf: it does not start with the \"k8s\\0\" magic".to_string(),
        ));
    };
    let unknown = decode_unknown(envelope).map_err(Malformed::into_error)?;
    if !unknown.content_encoding.is_empty() {
        return Err(ProtobufError(format!(
            "protobuf body uses content encoding {:?}, which is not supported: send it unencoded or as JSON",
            unknown.content_encoding
        )));
    }
    if !unknown.content_type.is_empty() && unknown.content_type != CONTENT_TYPE {
        return Err(ProtobufError(format!(
            "protobuf envelope holds {:?} content, which is not supported: send the object as JSON",
            unknown.content_type
        )));
    }
    if unknown.kind.is_empty() {
        return Err(ProtobufError("protobuf body has no kind in its typeMeta".to_string()));
    }
    let Some(schema) = schema_for(&unknown.api_version, &unknown.kind) else {
        return Err(ProtobufError(format!(
            "kind {:?} ({:?}) is not supported in protobuf by this server: send it as JSON (Content-Type: application/json)",
            unknown.kind, unknown.api_version
        )));
    };
    let mut out = Map::new();
    out.insert("apiVersion".to_string(), Value::String(unknown.api_version));
    out.insert("kind".to_string(), Value::String(unknown.kind));
    decode_message(unknown.raw, schema, &mut out).map_err(Malformed::into_error)?;
    Ok(Value::Object(out))
}

/// The top-level message of each supported (apiVersion, kind).
fn schema_for(api_version: &str, kind: &str) -> Option<&'static [Field]> {
    Some(match (api_version, kind) {
        ("v1", "Namespace") => NAMESPACE,
        ("v1", "ConfigMap") => CONFIG_MAP,
        ("v1", "Secret") => SECRET,
        ("v1", "Pod") => POD,
        ("v1", "Event") => EVENT,
        ("v1", "Node") => NODE,
        ("batch/v1", "Job") => JOB,
        ("coordination.k8s.io/v1", "Lease") => LEASE,
        ("apps/v1", "Deployment") => DEPLOYMENT,
        ("apps/v1", "ReplicaSet") => REPLICA_SET,
        // Registered in every group version (apimachinery `AddToGroupVersion`): typed under the resource's own.
        (_, "DeleteOptions") => DELETE_OPTIONS,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------------------------
// Errors

/// A wire-format error, with the JSON path of the field it was found in (built innermost first).
#[derive(Debug)]
struct Malformed {
    path: Vec<&'static str>,
    msg: String,
}

impl Malformed {
    fn new(msg: impl Into<String>) -> Self {
        Malformed { path: Vec::new(), msg: msg.into() }
    }

    fn within(mut self, field: &'static str) -> Self {
        self.path.push(field);
        self
    }

    fn into_error(self) -> ProtobufError {
        if self.path.is_empty() {
            ProtobufError(format!("malformed protobuf body: {}", self.msg))
        } else {
            let path: Vec<&str> = self.path.iter().rev().copied().collect();
            ProtobufError(format!("malformed protobuf body at {}: {}", path.join("."), self.msg))
        }
    }
}

type Result<T, E = Malformed> = std::result::Result<T, E>;

// ---------------------------------------------------------------------------------------------------------------
// Wire format (https://protobuf.dev/programming-guides/encoding/)

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// A cursor over one message's bytes.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// A base-128 varint: at most 10 bytes, the 10th carrying only the top bit of a u64.
    fn varint(&mut self) -> Result<u64> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(Malformed::new("truncated varint"));
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(Malformed::new("varint overflows 64 bits"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Malformed::new("varint overflows 64 bits"))
    }

    /// A field key: (field number, wire type).
    fn tag(&mut self) -> Result<(u32, u8)> {
        let key = self.varint()?;
        let num = key >> 3;
        // Field numbers are 1..=2^29-1 (https://protobuf.dev/programming-guides/proto2/#assigning).
        if num == 0 || num > (1 << 29) - 1 {
            return Err(Malformed::new(format!("invalid field number {num}")));
        }
        Ok((num as u32, (key & 7) as u8))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let rest = self.buf.len() - self.pos;
        if n > rest {
            return Err(Malformed::new(format!("field of {n} bytes overruns the {rest} bytes left in its message")));
        }
        let b = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(b)
    }

    /// A length-delimited field's payload.
    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.varint()?;
        let n = usize::try_from(n).map_err(|_| Malformed::new(format!("length {n} is too large")))?;
        self.take(n)
    }

    /// Skip a field this decoder does not know. Groups (wire types 3 and 4) are deprecated and never used by
    /// Kubernetes, so they are reported rather than skipped.
    fn skip(&mut self, wire: u8) -> Result<()> {
        match wire {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            LEN => self.bytes().map(drop),
            FIXED32 => self.take(4).map(drop),
            _ => Err(Malformed::new(format!("unsupported wire type {wire}"))),
        }
    }
}

fn expect_wire(wire: u8, want: u8) -> Result<()> {
    if wire == want {
        Ok(())
    } else {
        Err(Malformed::new(format!("wire type {wire} where {want} was expected")))
    }
}

fn utf8(b: &[u8]) -> Result<&str> {
    std::str::from_utf8(b).map_err(|_| Malformed::new("string is not valid UTF-8"))
}

// ---------------------------------------------------------------------------------------------------------------
// The envelope: runtime.Unknown (k8s.io/apimachinery pkg/runtime/generated.proto)
//   message Unknown { optional TypeMeta typeMeta = 1; optional bytes raw = 2;
//                     optional string contentEncoding = 3; optional string contentType = 4; }
//   message TypeMeta { optional string apiVersion = 1; optional string kind = 2; }

#[derive(Default)]
struct Unknown<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
    content_type: String,
}

fn decode_unknown(buf: &[u8]) -> Result<Unknown<'_>> {
    let mut u = Unknown::default();
    let mut r = Reader::new(buf);
    while !r.done() {
        let (num, wire) = r.tag()?;
        match num {
            1 => {
                expect_wire(wire, LEN).map_err(|e| e.within("typeMeta"))?;
                let mut t = Reader::new(r.bytes()?);
                while !t.done() {
                    let (num, wire) = t.tag()?;
                    let slot = match num {
                        1 => &mut u.api_version,
                        2 => &mut u.kind,
                        _ => {
                            t.skip(wire)?;
                            continue;
                        }
                    };
                    expect_wire(wire, LEN)?;
                    *slot = utf8(t.bytes()?)?.to_string();
                }
            }
            2 => {
                expect_wire(wire, LEN).map_err(|e| e.within("raw"))?;
                u.raw = r.bytes()?;
            }
            3 | 4 => {
                expect_wire(wire, LEN)?;
                let s = utf8(r.bytes()?)?.to_string();
                if num == 3 {
                    u.content_encoding = s;
                } else {
                    u.content_type = s;
                }
            }
            _ => r.skip(wire)?,
        }
    }
    Ok(u)
}

// ---------------------------------------------------------------------------------------------------------------
// Schemas

/// How a field's value is encoded and rendered in JSON.
#[derive(Clone, Copy)]
enum Kind {
    /// `string` → JSON string.
    Str,
    /// `int32` / `int64` varint → JSON number (negative values are sign-extended to 64 bits on the wire).
    Int,
    /// `bool` varint → JSON boolean.
    Bool,
    /// A nested message → JSON object.
    Msg(&'static [Field]),
    /// A nested message whose Go struct is embedded with `json:",inline"`: its fields land in the parent object
    /// (e.g. `Volume.volumeSource`, `Probe.handler`, `ConfigMapKeySelector.localObjectReference`).
    Inline(&'static [Field]),
    /// `map<string, string>`: repeated entries {1: key, 2: value} → JSON object of strings.
    MapStr,
    /// `map<string, bytes>` → JSON object of standard base64 strings (how `[]byte` marshals in Go).
    MapBytes,
    /// `map<string, resource.Quantity>` → JSON object of quantity strings.
    MapQuantity,
    /// `metav1.Time` {1: seconds, 2: nanos} → RFC 3339 in UTC, whole seconds; an empty message is the zero time.
    Time,
    /// `metav1.MicroTime` → RFC 3339 in UTC with 6 fractional digits.
    MicroTime,
    /// `resource.Quantity` {1: string} → the string.
    Quantity,
    /// `intstr.IntOrString` {1: type, 2: intVal, 3: strVal} → JSON number or string.
    IntOrString,
}

/// Presence in JSON.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Card {
    /// A non-pointer Go field tagged `omitempty`: gogo always writes it, so its zero value is dropped.
    Omit,
    /// A Go pointer (written only when set) or a field without `omitempty`: kept whenever present, even if zero.
    Keep,
    /// `repeated`: each occurrence appends to a JSON array.
    Rep,
}

struct Field {
    num: u32,
    name: &'static str,
    kind: Kind,
    card: Card,
}

const fn opt(num: u32, name: &'static str, kind: Kind) -> Field {
    Field { num, name, kind, card: Card::Omit }
}

const fn keep(num: u32, name: &'static str, kind: Kind) -> Field {
    Field { num, name, kind, card: Card::Keep }
}

const fn rep(num: u32, name: &'static str, kind: Kind) -> Field {
    Field { num, name, kind, card: Card::Rep }
}

use Kind::{Bool, Inline, Int, IntOrString, MapBytes, MapQuantity, MapStr, MicroTime, Msg, Quantity, Str, Time};

// --- k8s.io/apimachinery pkg/apis/meta/v1/generated.proto -------------------------------------------------------

// message OwnerReference { apiVersion = 5; kind = 1; name = 3; uid = 4; controller = 6; blockOwnerDeletion = 7; }
// controller and blockOwnerDeletion are *bool; the strings have no omitempty.
const OWNER_REFERENCE: &[Field] = &[
    keep(5, "apiVersion", Str),
    keep(1, "kind", Str),
    keep(3, "name", Str),
    keep(4, "uid", Str),
    keep(6, "controller", Bool),
    keep(7, "blockOwnerDeletion", Bool),
];

// message ObjectMeta { name = 1; generateName = 2; namespace = 3; selfLink = 4; uid = 5; resourceVersion = 6;
//   generation = 7; creationTimestamp = 8; deletionTimestamp = 9; deletionGracePeriodSeconds = 10; labels = 11;
//   annotations = 12; ownerReferences = 13; finalizers = 14; managedFields = 17; }
// managedFields is left out (skipped): the server owns it and clients do not send it on create.
const OBJECT_META: &[Field] = &[
    opt(1, "name", Str),
    opt(2, "generateName", Str),
    opt(3, "namespace", Str),
    opt(4, "selfLink", Str),
    opt(5, "uid", Str),
    opt(6, "resourceVersion", Str),
    opt(7, "generation", Int),
    opt(8, "creationTimestamp", Time),
    keep(9, "deletionTimestamp", Time),
    keep(10, "deletionGracePeriodSeconds", Int),
    opt(11, "labels", MapStr),
    opt(12, "annotations", MapStr),
    rep(13, "ownerReferences", Msg(OWNER_REFERENCE)),
    rep(14, "finalizers", Str),
];

// message Preconditions { uid = 1; resourceVersion = 2; } (both pointers)
const PRECONDITIONS: &[Field] = &[keep(1, "uid", Str), keep(2, "resourceVersion", Str)];

// message DeleteOptions { gracePeriodSeconds = 1; preconditions = 2; orphanDependents = 3; propagationPolicy = 4;
//   repeated dryRun = 5; ignoreStoreReadErrorWithClusterBreakingPotential = 6; } (pointers but dryRun)
// Typed clients send it as the body of a DELETE (`kubectl debug --replace`, `kubectl drain`).
const DELETE_OPTIONS: &[Field] = &[
    keep(1, "gracePeriodSeconds", Int),
    keep(2, "preconditions", Msg(PRECONDITIONS)),
    keep(3, "orphanDependents", Bool),
    keep(4, "propagationPolicy", Str),
    rep(5, "dryRun", Str),
    keep(6, "ignoreStoreReadErrorWithClusterBreakingPotential", Bool),
];

// message LabelSelectorRequirement { key = 1; operator = 2; repeated values = 3; }
const LABEL_SELECTOR_REQUIREMENT: &[Field] = &[keep(1, "key", Str), keep(2, "operator", Str), rep(3, "values", Str)];

// message LabelSelector { map<string, string> matchLabels = 1; repeated LabelSelectorRequirement matchExpressions = 2; }
const LABEL_SELECTOR: &[Field] =
    &[opt(1, "matchLabels", MapStr), rep(2, "matchExpressions", Msg(LABEL_SELECTOR_REQUIREMENT))];

// --- k8s.io/api core/v1/generated.proto: references and selectors -----------------------------------------------

// message LocalObjectReference { name = 1; }  (json "name,omitempty")
const LOCAL_OBJECT_REFERENCE: &[Field] = &[opt(1, "name", Str)];

// message ObjectReference { kind = 1; namespace = 2; name = 3; uid = 4; apiVersion = 5; resourceVersion = 6;
//   fieldPath = 7; }  (all omitempty)
const OBJECT_REFERENCE: &[Field] = &[
    opt(1, "kind", Str),
    opt(2, "namespace", Str),
    opt(3, "name", Str),
    opt(4, "uid", Str),
    opt(5, "apiVersion", Str),
    opt(6, "resourceVersion", Str),
    opt(7, "fieldPath", Str),
];

// message ObjectFieldSelector { apiVersion = 1; fieldPath = 2; }
const OBJECT_FIELD_SELECTOR: &[Field] = &[opt(1, "apiVersion", Str), keep(2, "fieldPath", Str)];

// message ResourceFieldSelector { containerName = 1; resource = 2; Quantity divisor = 3; }
const RESOURCE_FIELD_SELECTOR: &[Field] =
    &[opt(1, "containerName", Str), keep(2, "resource", Str), opt(3, "divisor", Quantity)];

// message ConfigMapKeySelector / SecretKeySelector { LocalObjectReference localObjectReference = 1 (inline);
//   key = 2; optional = 3 (*bool); }
const KEY_SELECTOR: &[Field] =
    &[opt(1, "localObjectReference", Inline(LOCAL_OBJECT_REFERENCE)), keep(2, "key", Str), keep(3, "optional", Bool)];

// message FileKeySelector { volumeName = 1; path = 2; key = 3; optional = 4; }
const FILE_KEY_SELECTOR: &[Field] =
    &[keep(1, "volumeName", Str), keep(2, "path", Str), keep(3, "key", Str), keep(4, "optional", Bool)];

// message EnvVarSource { fieldRef = 1; resourceFieldRef = 2; configMapKeyRef = 3; secretKeyRef = 4; fileKeyRef = 5; }
const ENV_VAR_SOURCE: &[Field] = &[
    keep(1, "fieldRef", Msg(OBJECT_FIELD_SELECTOR)),
    keep(2, "resourceFieldRef", Msg(RESOURCE_FIELD_SELECTOR)),
    keep(3, "configMapKeyRef", Msg(KEY_SELECTOR)),
    keep(4, "secretKeyRef", Msg(KEY_SELECTOR)),
    keep(5, "fileKeyRef", Msg(FILE_KEY_SELECTOR)),
];

// message EnvVar { name = 1; value = 2; EnvVarSource valueFrom = 3; }
const ENV_VAR: &[Field] = &[keep(1, "name", Str), opt(2, "value", Str), keep(3, "valueFrom", Msg(ENV_VAR_SOURCE))];

// message ConfigMapEnvSource / SecretEnvSource { LocalObjectReference localObjectReference = 1 (inline);
//   optional = 2 (*bool); }
const ENV_SOURCE: &[Field] =
    &[opt(1, "localObjectReference", Inline(LOCAL_OBJECT_REFERENCE)), keep(2, "optional", Bool)];

// message EnvFromSource { prefix = 1; ConfigMapEnvSource configMapRef = 2; SecretEnvSource secretRef = 3; }
const ENV_FROM_SOURCE: &[Field] =
    &[opt(1, "prefix", Str), keep(2, "configMapRef", Msg(ENV_SOURCE)), keep(3, "secretRef", Msg(ENV_SOURCE))];

// --- core/v1: containers ----------------------------------------------------------------------------------------

// message ContainerPort { name = 1; hostPort = 2; containerPort = 3; protocol = 4; hostIP = 5; }
const CONTAINER_PORT: &[Field] = &[
    opt(1, "name", Str),
    opt(2, "hostPort", Int),
    keep(3, "containerPort", Int),
    opt(4, "protocol", Str),
    opt(5, "hostIP", Str),
];

// message ResourceClaim { name = 1; request = 2; }
const RESOURCE_CLAIM: &[Field] = &[keep(1, "name", Str), opt(2, "request", Str)];

// message ResourceRequirements { map<string, Quantity> limits = 1; requests = 2; repeated ResourceClaim claims = 3; }
const RESOURCE_REQUIREMENTS: &[Field] =
    &[opt(1, "limits", MapQuantity), opt(2, "requests", MapQuantity), rep(3, "claims", Msg(RESOURCE_CLAIM))];

// message ContainerResizePolicy { resourceName = 1; restartPolicy = 2; }
const CONTAINER_RESIZE_POLICY: &[Field] = &[keep(1, "resourceName", Str), keep(2, "restartPolicy", Str)];

// message ContainerRestartRuleOnExitCodes { operator = 1; repeated int32 values = 2; }
const CONTAINER_RESTART_RULE_ON_EXIT_CODES: &[Field] = &[keep(1, "operator", Str), rep(2, "values", Int)];

// message ContainerRestartRule { action = 1; ContainerRestartRuleOnExitCodes exitCodes = 2; }
const CONTAINER_RESTART_RULE: &[Field] =
    &[keep(1, "action", Str), keep(2, "exitCodes", Msg(CONTAINER_RESTART_RULE_ON_EXIT_CODES))];

// message VolumeMount { name = 1; readOnly = 2; recursiveReadOnly = 7; mountPath = 3; subPath = 4;
//   mountPropagation = 5; subPathExpr = 6; }  (recursiveReadOnly and mountPropagation are pointers)
const VOLUME_MOUNT: &[Field] = &[
    keep(1, "name", Str),
    opt(2, "readOnly", Bool),
    keep(7, "recursiveReadOnly", Str),
    keep(3, "mountPath", Str),
    opt(4, "subPath", Str),
    keep(5, "mountPropagation", Str),
    opt(6, "subPathExpr", Str),
];

// message VolumeDevice { name = 1; devicePath = 2; }
const VOLUME_DEVICE: &[Field] = &[keep(1, "name", Str), keep(2, "devicePath", Str)];

// message ExecAction { repeated string command = 1; }
const EXEC_ACTION: &[Field] = &[rep(1, "command", Str)];

// message HTTPHeader { name = 1; value = 2; }
const HTTP_HEADER: &[Field] = &[keep(1, "name", Str), keep(2, "value", Str)];

// message HTTPGetAction { path = 1; IntOrString port = 2; host = 3; scheme = 4; repeated HTTPHeader httpHeaders = 5; }
const HTTP_GET_ACTION: &[Field] = &[
    opt(1, "path", Str),
    keep(2, "port", IntOrString),
    opt(3, "host", Str),
    opt(4, "scheme", Str),
    rep(5, "httpHeaders", Msg(HTTP_HEADER)),
];

// message TCPSocketAction { IntOrString port = 1; host = 2; }
const TCP_SOCKET_ACTION: &[Field] = &[keep(1, "port", IntOrString), opt(2, "host", Str)];

// message GRPCAction { int32 port = 1; service = 2 (*string); }
const GRPC_ACTION: &[Field] = &[keep(1, "port", Int), keep(2, "service", Str)];

// message SleepAction { int64 seconds = 1; }
const SLEEP_ACTION: &[Field] = &[keep(1, "seconds", Int)];

// message ProbeHandler { exec = 1; httpGet = 2; tcpSocket = 3; grpc = 4; }
const PROBE_HANDLER: &[Field] = &[
    keep(1, "exec", Msg(EXEC_ACTION)),
    keep(2, "httpGet", Msg(HTTP_GET_ACTION)),
    keep(3, "tcpSocket", Msg(TCP_SOCKET_ACTION)),
    keep(4, "grpc", Msg(GRPC_ACTION)),
];

// message Probe { ProbeHandler handler = 1 (inline); initialDelaySeconds = 2; timeoutSeconds = 3; periodSeconds = 4;
//   successThreshold = 5; failureThreshold = 6; terminationGracePeriodSeconds = 7 (*int64); }
const PROBE: &[Field] = &[
    opt(1, "handler", Inline(PROBE_HANDLER)),
    opt(2, "initialDelaySeconds", Int),
    opt(3, "timeoutSeconds", Int),
    opt(4, "periodSeconds", Int),
    opt(5, "successThreshold", Int),
    opt(6, "failureThreshold", Int),
    keep(7, "terminationGracePeriodSeconds", Int),
];

// message LifecycleHandler { exec = 1; httpGet = 2; tcpSocket = 3; sleep = 4; }
const LIFECYCLE_HANDLER: &[Field] = &[
    keep(1, "exec", Msg(EXEC_ACTION)),
    keep(2, "httpGet", Msg(HTTP_GET_ACTION)),
    keep(3, "tcpSocket", Msg(TCP_SOCKET_ACTION)),
    keep(4, "sleep", Msg(SLEEP_ACTION)),
];

// message Lifecycle { LifecycleHandler postStart = 1; preStop = 2; stopSignal = 3 (*Signal); }
const LIFECYCLE: &[Field] = &[
    keep(1, "postStart", Msg(LIFECYCLE_HANDLER)),
    keep(2, "preStop", Msg(LIFECYCLE_HANDLER)),
    keep(3, "stopSignal", Str),
];

// message Capabilities { repeated string add = 1; repeated string drop = 2; }
const CAPABILITIES: &[Field] = &[rep(1, "add", Str), rep(2, "drop", Str)];

// message SELinuxOptions { user = 1; role = 2; type = 3; level = 4; }
const SE_LINUX_OPTIONS: &[Field] =
    &[opt(1, "user", Str), opt(2, "role", Str), opt(3, "type", Str), opt(4, "level", Str)];

// message WindowsSecurityContextOptions { gmsaCredentialSpecName = 1; gmsaCredentialSpec = 2; runAsUserName = 3;
//   hostProcess = 4; }  (all pointers)
const WINDOWS_SECURITY_CONTEXT_OPTIONS: &[Field] = &[
    keep(1, "gmsaCredentialSpecName", Str),
    keep(2, "gmsaCredentialSpec", Str),
    keep(3, "runAsUserName", Str),
    keep(4, "hostProcess", Bool),
];

// message SeccompProfile / AppArmorProfile { type = 1; localhostProfile = 2 (*string); }
const PROFILE: &[Field] = &[keep(1, "type", Str), keep(2, "localhostProfile", Str)];

// message Ulimit { name = 1; int64 hard = 2; int64 soft = 3; }
const ULIMIT: &[Field] = &[keep(1, "name", Str), keep(2, "hard", Int), keep(3, "soft", Int)];

// message SecurityContext { capabilities = 1; privileged = 2; seLinuxOptions = 3; windowsOptions = 10;
//   runAsUser = 4; runAsGroup = 8; runAsNonRoot = 5; readOnlyRootFilesystem = 6; allowPrivilegeEscalation = 7;
//   procMount = 9; seccompProfile = 11; appArmorProfile = 12; repeated Ulimit ulimits = 13; }
// Every scalar here is a pointer in Go, so `privileged: false` or `runAsUser: 0` are kept.
const SECURITY_CONTEXT: &[Field] = &[
    keep(1, "capabilities", Msg(CAPABILITIES)),
    keep(2, "privileged", Bool),
    keep(3, "seLinuxOptions", Msg(SE_LINUX_OPTIONS)),
    keep(10, "windowsOptions", Msg(WINDOWS_SECURITY_CONTEXT_OPTIONS)),
    keep(4, "runAsUser", Int),
    keep(8, "runAsGroup", Int),
    keep(5, "runAsNonRoot", Bool),
    keep(6, "readOnlyRootFilesystem", Bool),
    keep(7, "allowPrivilegeEscalation", Bool),
    keep(9, "procMount", Str),
    keep(11, "seccompProfile", Msg(PROFILE)),
    keep(12, "appArmorProfile", Msg(PROFILE)),
    rep(13, "ulimits", Msg(ULIMIT)),
];

// message Container { name = 1; image = 2; command = 3; args = 4; workingDir = 5; ports = 6; envFrom = 19; env = 7;
//   resources = 8; resizePolicy = 23; restartPolicy = 24; restartPolicyRules = 25; volumeMounts = 9;
//   volumeDevices = 21; livenessProbe = 10; readinessProbe = 11; startupProbe = 22; lifecycle = 12;
//   terminationMessagePath = 13; terminationMessagePolicy = 20; imagePullPolicy = 14; securityContext = 15;
//   stdin = 16; stdinOnce = 17; tty = 18; }
// EphemeralContainerCommon repeats these numbers exactly, so it reuses this schema.
const CONTAINER: &[Field] = &[
    keep(1, "name", Str),
    opt(2, "image", Str),
    rep(3, "command", Str),
    rep(4, "args", Str),
    opt(5, "workingDir", Str),
    rep(6, "ports", Msg(CONTAINER_PORT)),
    rep(19, "envFrom", Msg(ENV_FROM_SOURCE)),
    rep(7, "env", Msg(ENV_VAR)),
    opt(8, "resources", Msg(RESOURCE_REQUIREMENTS)),
    rep(23, "resizePolicy", Msg(CONTAINER_RESIZE_POLICY)),
    keep(24, "restartPolicy", Str),
    rep(25, "restartPolicyRules", Msg(CONTAINER_RESTART_RULE)),
    rep(9, "volumeMounts", Msg(VOLUME_MOUNT)),
    rep(21, "volumeDevices", Msg(VOLUME_DEVICE)),
    keep(10, "livenessProbe", Msg(PROBE)),
    keep(11, "readinessProbe", Msg(PROBE)),
    keep(22, "startupProbe", Msg(PROBE)),
    keep(12, "lifecycle", Msg(LIFECYCLE)),
    opt(13, "terminationMessagePath", Str),
    opt(20, "terminationMessagePolicy", Str),
    opt(14, "imagePullPolicy", Str),
    keep(15, "securityContext", Msg(SECURITY_CONTEXT)),
    opt(16, "stdin", Bool),
    opt(17, "stdinOnce", Bool),
    opt(18, "tty", Bool),
];

// message EphemeralContainer { EphemeralContainerCommon ephemeralContainerCommon = 1 (inline);
//   targetContainerName = 2; }
const EPHEMERAL_CONTAINER: &[Field] =
    &[opt(1, "ephemeralContainerCommon", Inline(CONTAINER)), opt(2, "targetContainerName", Str)];

// --- core/v1: volumes -------------------------------------------------------------------------------------------

// message KeyToPath { key = 1; path = 2; mode = 3 (*int32); }
const KEY_TO_PATH: &[Field] = &[keep(1, "key", Str), keep(2, "path", Str), keep(3, "mode", Int)];

// message HostPathVolumeSource { path = 1; type = 2 (*HostPathType); }
const HOST_PATH_VOLUME_SOURCE: &[Field] = &[keep(1, "path", Str), keep(2, "type", Str)];

// message EmptyDirVolumeSource { medium = 1; Quantity sizeLimit = 2 (*Quantity); }
const EMPTY_DIR_VOLUME_SOURCE: &[Field] = &[opt(1, "medium", Str), keep(2, "sizeLimit", Quantity)];

// message SecretVolumeSource { secretName = 1; items = 2; defaultMode = 3 (*int32); optional = 4 (*bool); }
const SECRET_VOLUME_SOURCE: &[Field] = &[
    opt(1, "secretName", Str),
    rep(2, "items", Msg(KEY_TO_PATH)),
    keep(3, "defaultMode", Int),
    keep(4, "optional", Bool),
];

// message ConfigMapVolumeSource { localObjectReference = 1 (inline); items = 2; defaultMode = 3; optional = 4; }
const CONFIG_MAP_VOLUME_SOURCE: &[Field] = &[
    opt(1, "localObjectReference", Inline(LOCAL_OBJECT_REFERENCE)),
    rep(2, "items", Msg(KEY_TO_PATH)),
    keep(3, "defaultMode", Int),
    keep(4, "optional", Bool),
];

// message NFSVolumeSource { server = 1; path = 2; readOnly = 3; }
const NFS_VOLUME_SOURCE: &[Field] = &[keep(1, "server", Str), keep(2, "path", Str), opt(3, "readOnly", Bool)];

// message PersistentVolumeClaimVolumeSource { claimName = 1; readOnly = 2; }
const PVC_VOLUME_SOURCE: &[Field] = &[keep(1, "claimName", Str), opt(2, "readOnly", Bool)];

// message DownwardAPIVolumeFile { path = 1; fieldRef = 2; resourceFieldRef = 3; mode = 4 (*int32); }
const DOWNWARD_API_VOLUME_FILE: &[Field] = &[
    keep(1, "path", Str),
    keep(2, "fieldRef", Msg(OBJECT_FIELD_SELECTOR)),
    keep(3, "resourceFieldRef", Msg(RESOURCE_FIELD_SELECTOR)),
    keep(4, "mode", Int),
];

// message DownwardAPIVolumeSource { repeated DownwardAPIVolumeFile items = 1; defaultMode = 2 (*int32); }
const DOWNWARD_API_VOLUME_SOURCE: &[Field] =
    &[rep(1, "items", Msg(DOWNWARD_API_VOLUME_FILE)), keep(2, "defaultMode", Int)];

// message DownwardAPIProjection { repeated DownwardAPIVolumeFile items = 1; }
const DOWNWARD_API_PROJECTION: &[Field] = &[rep(1, "items", Msg(DOWNWARD_API_VOLUME_FILE))];

// message SecretProjection / ConfigMapProjection { localObjectReference = 1 (inline); items = 2; optional = 4; }
const OBJECT_PROJECTION: &[Field] = &[
    opt(1, "localObjectReference", Inline(LOCAL_OBJECT_REFERENCE)),
    rep(2, "items", Msg(KEY_TO_PATH)),
    keep(4, "optional", Bool),
];

// message ServiceAccountTokenProjection { audience = 1; expirationSeconds = 2 (*int64); path = 3; }
const SERVICE_ACCOUNT_TOKEN_PROJECTION: &[Field] =
    &[opt(1, "audience", Str), keep(2, "expirationSeconds", Int), keep(3, "path", Str)];

// message VolumeProjection { secret = 1; downwardAPI = 2; configMap = 3; serviceAccountToken = 4; ... }
// clusterTrustBundle (5) and podCertificate (6) are not decoded.
const VOLUME_PROJECTION: &[Field] = &[
    keep(1, "secret", Msg(OBJECT_PROJECTION)),
    keep(2, "downwardAPI", Msg(DOWNWARD_API_PROJECTION)),
    keep(3, "configMap", Msg(OBJECT_PROJECTION)),
    keep(4, "serviceAccountToken", Msg(SERVICE_ACCOUNT_TOKEN_PROJECTION)),
];

// message ProjectedVolumeSource { repeated VolumeProjection sources = 1; defaultMode = 2 (*int32); }
const PROJECTED_VOLUME_SOURCE: &[Field] = &[rep(1, "sources", Msg(VOLUME_PROJECTION)), keep(2, "defaultMode", Int)];

// message CSIVolumeSource { driver = 1; readOnly = 2; fsType = 3; volumeAttributes = 4; nodePublishSecretRef = 5; }
const CSI_VOLUME_SOURCE: &[Field] = &[
    keep(1, "driver", Str),
    keep(2, "readOnly", Bool),
    keep(3, "fsType", Str),
    opt(4, "volumeAttributes", MapStr),
    keep(5, "nodePublishSecretRef", Msg(LOCAL_OBJECT_REFERENCE)),
];

// message ImageVolumeSource { reference = 1; pullPolicy = 2; }
const IMAGE_VOLUME_SOURCE: &[Field] = &[opt(1, "reference", Str), opt(2, "pullPolicy", Str)];

// message VolumeSource { hostPath = 1; emptyDir = 2; secret = 6; nfs = 7; persistentVolumeClaim = 10;
//   downwardAPI = 16; configMap = 19; projected = 26; csi = 28; image = 30; ... }
// The in-tree cloud and legacy network volumes (and ephemeral = 29) are not decoded.
const VOLUME_SOURCE: &[Field] = &[
    keep(1, "hostPath", Msg(HOST_PATH_VOLUME_SOURCE)),
    keep(2, "emptyDir", Msg(EMPTY_DIR_VOLUME_SOURCE)),
    keep(6, "secret", Msg(SECRET_VOLUME_SOURCE)),
    keep(7, "nfs", Msg(NFS_VOLUME_SOURCE)),
    keep(10, "persistentVolumeClaim", Msg(PVC_VOLUME_SOURCE)),
    keep(16, "downwardAPI", Msg(DOWNWARD_API_VOLUME_SOURCE)),
    keep(19, "configMap", Msg(CONFIG_MAP_VOLUME_SOURCE)),
    keep(26, "projected", Msg(PROJECTED_VOLUME_SOURCE)),
    keep(28, "csi", Msg(CSI_VOLUME_SOURCE)),
    keep(30, "image", Msg(IMAGE_VOLUME_SOURCE)),
];

// message Volume { name = 1; VolumeSource volumeSource = 2 (inline); }
const VOLUME: &[Field] = &[keep(1, "name", Str), opt(2, "volumeSource", Inline(VOLUME_SOURCE))];

// --- core/v1: scheduling ----------------------------------------------------------------------------------------

// message NodeSelectorRequirement { key = 1; operator = 2; repeated values = 3; }
const NODE_SELECTOR_REQUIREMENT: &[Field] = &[keep(1, "key", Str), keep(2, "operator", Str), rep(3, "values", Str)];

// message NodeSelectorTerm { repeated matchExpressions = 1; repeated matchFields = 2; }
const NODE_SELECTOR_TERM: &[Field] = &[
    rep(1, "matchExpressions", Msg(NODE_SELECTOR_REQUIREMENT)),
    rep(2, "matchFields", Msg(NODE_SELECTOR_REQUIREMENT)),
];

// message NodeSelector { repeated NodeSelectorTerm nodeSelectorTerms = 1; }
const NODE_SELECTOR: &[Field] = &[rep(1, "nodeSelectorTerms", Msg(NODE_SELECTOR_TERM))];

// message PreferredSchedulingTerm { weight = 1; NodeSelectorTerm preference = 2; }
const PREFERRED_SCHEDULING_TERM: &[Field] = &[keep(1, "weight", Int), keep(2, "preference", Msg(NODE_SELECTOR_TERM))];

// message NodeAffinity { NodeSelector requiredDuringSchedulingIgnoredDuringExecution = 1;
//   repeated PreferredSchedulingTerm preferredDuringSchedulingIgnoredDuringExecution = 2; }
const NODE_AFFINITY: &[Field] = &[
    keep(1, "requiredDuringSchedulingIgnoredDuringExecution", Msg(NODE_SELECTOR)),
    rep(2, "preferredDuringSchedulingIgnoredDuringExecution", Msg(PREFERRED_SCHEDULING_TERM)),
];

// message PodAffinityTerm { labelSelector = 1; namespaces = 2; topologyKey = 3; namespaceSelector = 4;
//   matchLabelKeys = 5; mismatchLabelKeys = 6; }
const POD_AFFINITY_TERM: &[Field] = &[
    keep(1, "labelSelector", Msg(LABEL_SELECTOR)),
    rep(2, "namespaces", Str),
    keep(3, "topologyKey", Str),
    keep(4, "namespaceSelector", Msg(LABEL_SELECTOR)),
    rep(5, "matchLabelKeys", Str),
    rep(6, "mismatchLabelKeys", Str),
];

// message WeightedPodAffinityTerm { weight = 1; PodAffinityTerm podAffinityTerm = 2; }
const WEIGHTED_POD_AFFINITY_TERM: &[Field] =
    &[keep(1, "weight", Int), keep(2, "podAffinityTerm", Msg(POD_AFFINITY_TERM))];

// message PodAffinity / PodAntiAffinity { repeated PodAffinityTerm requiredDuringSchedulingIgnoredDuringExecution = 1;
//   repeated WeightedPodAffinityTerm preferredDuringSchedulingIgnoredDuringExecution = 2; }
const POD_AFFINITY: &[Field] = &[
    rep(1, "requiredDuringSchedulingIgnoredDuringExecution", Msg(POD_AFFINITY_TERM)),
    rep(2, "preferredDuringSchedulingIgnoredDuringExecution", Msg(WEIGHTED_POD_AFFINITY_TERM)),
];

// message Affinity { nodeAffinity = 1; podAffinity = 2; podAntiAffinity = 3; }
const AFFINITY: &[Field] = &[
    keep(1, "nodeAffinity", Msg(NODE_AFFINITY)),
    keep(2, "podAffinity", Msg(POD_AFFINITY)),
    keep(3, "podAntiAffinity", Msg(POD_AFFINITY)),
];

// message Toleration { key = 1; operator = 2; value = 3; effect = 4; tolerationSeconds = 5 (*int64); }
const TOLERATION: &[Field] = &[
    opt(1, "key", Str),
    opt(2, "operator", Str),
    opt(3, "value", Str),
    opt(4, "effect", Str),
    keep(5, "tolerationSeconds", Int),
];

// message TopologySpreadConstraint { maxSkew = 1; topologyKey = 2; whenUnsatisfiable = 3; labelSelector = 4;
//   minDomains = 5; nodeAffinityPolicy = 6; nodeTaintsPolicy = 7; matchLabelKeys = 8; }
const TOPOLOGY_SPREAD_CONSTRAINT: &[Field] = &[
    keep(1, "maxSkew", Int),
    keep(2, "topologyKey", Str),
    keep(3, "whenUnsatisfiable", Str),
    keep(4, "labelSelector", Msg(LABEL_SELECTOR)),
    keep(5, "minDomains", Int),
    keep(6, "nodeAffinityPolicy", Str),
    keep(7, "nodeTaintsPolicy", Str),
    rep(8, "matchLabelKeys", Str),
];

// --- core/v1: pods ----------------------------------------------------------------------------------------------

// message Sysctl { name = 1; value = 2; }
const SYSCTL: &[Field] = &[keep(1, "name", Str), keep(2, "value", Str)];

// message PodSecurityContext { seLinuxOptions = 1; windowsOptions = 8; runAsUser = 2; runAsGroup = 6;
//   runAsNonRoot = 3; repeated int64 supplementalGroups = 4; supplementalGroupsPolicy = 12; fsGroup = 5;
//   sysctls = 7; fsGroupChangePolicy = 9; seccompProfile = 10; appArmorProfile = 11; seLinuxChangePolicy = 13; }
const POD_SECURITY_CONTEXT: &[Field] = &[
    keep(1, "seLinuxOptions", Msg(SE_LINUX_OPTIONS)),
    keep(8, "windowsOptions", Msg(WINDOWS_SECURITY_CONTEXT_OPTIONS)),
    keep(2, "runAsUser", Int),
    keep(6, "runAsGroup", Int),
    keep(3, "runAsNonRoot", Bool),
    rep(4, "supplementalGroups", Int),
    keep(12, "supplementalGroupsPolicy", Str),
    keep(5, "fsGroup", Int),
    rep(7, "sysctls", Msg(SYSCTL)),
    keep(9, "fsGroupChangePolicy", Str),
    keep(10, "seccompProfile", Msg(PROFILE)),
    keep(11, "appArmorProfile", Msg(PROFILE)),
    keep(13, "seLinuxChangePolicy", Str),
];

// message HostAlias { ip = 1; repeated hostnames = 2; }
const HOST_ALIAS: &[Field] = &[keep(1, "ip", Str), rep(2, "hostnames", Str)];

// message PodDNSConfigOption { name = 1; value = 2 (*string); }
const POD_DNS_CONFIG_OPTION: &[Field] = &[opt(1, "name", Str), keep(2, "value", Str)];

// message PodDNSConfig { repeated nameservers = 1; repeated searches = 2; repeated options = 3; }
const POD_DNS_CONFIG: &[Field] =
    &[rep(1, "nameservers", Str), rep(2, "searches", Str), rep(3, "options", Msg(POD_DNS_CONFIG_OPTION))];

// message PodReadinessGate { conditionType = 1; }
const POD_READINESS_GATE: &[Field] = &[keep(1, "conditionType", Str)];

// message PodOS { name = 1; }  message PodSchedulingGate { name = 1; }
const NAME_ONLY: &[Field] = &[keep(1, "name", Str)];

// message PodResourceClaim { name = 1; resourceClaimName = 3; resourceClaimTemplateName = 4; }  (pointers)
const POD_RESOURCE_CLAIM: &[Field] =
    &[keep(1, "name", Str), keep(3, "resourceClaimName", Str), keep(4, "resourceClaimTemplateName", Str)];

// message WorkloadReference { name = 1; podGroup = 2; podGroupReplicaKey = 3; }
const WORKLOAD_REFERENCE: &[Field] =
    &[keep(1, "name", Str), keep(2, "podGroup", Str), opt(3, "podGroupReplicaKey", Str)];

// message PodSpec { volumes = 1; initContainers = 20; containers = 2; ephemeralContainers = 34; restartPolicy = 3;
//   terminationGracePeriodSeconds = 4; activeDeadlineSeconds = 5; dnsPolicy = 6; nodeSelector = 7;
//   serviceAccountName = 8; serviceAccount = 9; automountServiceAccountToken = 21; nodeName = 10; hostNetwork = 11;
//   hostPID = 12; hostIPC = 13; shareProcessNamespace = 27; securityContext = 14; imagePullSecrets = 15;
//   hostname = 16; subdomain = 17; affinity = 18; schedulerName = 19; tolerations = 22; hostAliases = 23;
//   priorityClassName = 24; priority = 25; dnsConfig = 26; readinessGates = 28; runtimeClassName = 29;
//   enableServiceLinks = 30; preemptionPolicy = 31; overhead = 32; topologySpreadConstraints = 33;
//   setHostnameAsFQDN = 35; os = 36; hostUsers = 37; schedulingGates = 38; resourceClaims = 39; resources = 40;
//   hostnameOverride = 41; workloadRef = 42; }
const POD_SPEC: &[Field] = &[
    rep(1, "volumes", Msg(VOLUME)),
    rep(20, "initContainers", Msg(CONTAINER)),
    rep(2, "containers", Msg(CONTAINER)),
    rep(34, "ephemeralContainers", Msg(EPHEMERAL_CONTAINER)),
    opt(3, "restartPolicy", Str),
    keep(4, "terminationGracePeriodSeconds", Int),
    keep(5, "activeDeadlineSeconds", Int),
    opt(6, "dnsPolicy", Str),
    opt(7, "nodeSelector", MapStr),
    opt(8, "serviceAccountName", Str),
    opt(9, "serviceAccount", Str),
    keep(21, "automountServiceAccountToken", Bool),
    opt(10, "nodeName", Str),
    opt(11, "hostNetwork", Bool),
    opt(12, "hostPID", Bool),
    opt(13, "hostIPC", Bool),
    keep(27, "shareProcessNamespace", Bool),
    keep(14, "securityContext", Msg(POD_SECURITY_CONTEXT)),
    rep(15, "imagePullSecrets", Msg(LOCAL_OBJECT_REFERENCE)),
    opt(16, "hostname", Str),
    opt(17, "subdomain", Str),
    keep(18, "affinity", Msg(AFFINITY)),
    opt(19, "schedulerName", Str),
    rep(22, "tolerations", Msg(TOLERATION)),
    rep(23, "hostAliases", Msg(HOST_ALIAS)),
    opt(24, "priorityClassName", Str),
    keep(25, "priority", Int),
    keep(26, "dnsConfig", Msg(POD_DNS_CONFIG)),
    rep(28, "readinessGates", Msg(POD_READINESS_GATE)),
    keep(29, "runtimeClassName", Str),
    keep(30, "enableServiceLinks", Bool),
    keep(31, "preemptionPolicy", Str),
    opt(32, "overhead", MapQuantity),
    rep(33, "topologySpreadConstraints", Msg(TOPOLOGY_SPREAD_CONSTRAINT)),
    keep(35, "setHostnameAsFQDN", Bool),
    keep(36, "os", Msg(NAME_ONLY)),
    keep(37, "hostUsers", Bool),
    rep(38, "schedulingGates", Msg(NAME_ONLY)),
    rep(39, "resourceClaims", Msg(POD_RESOURCE_CLAIM)),
    keep(40, "resources", Msg(RESOURCE_REQUIREMENTS)),
    keep(41, "hostnameOverride", Str),
    keep(42, "workloadRef", Msg(WORKLOAD_REFERENCE)),
];

// message PodTemplateSpec { ObjectMeta metadata = 1; PodSpec spec = 2; }
const POD_TEMPLATE_SPEC: &[Field] = &[opt(1, "metadata", Msg(OBJECT_META)), opt(2, "spec", Msg(POD_SPEC))];

// message Pod { metadata = 1; spec = 2; status = 3; }  status is not decoded: the server owns it.
const POD: &[Field] = &[opt(1, "metadata", Msg(OBJECT_META)), opt(2, "spec", Msg(POD_SPEC))];

// --- core/v1: Namespace, ConfigMap, Secret ----------------------------------------------------------------------

// message NamespaceCondition { type = 1; status = 2; lastTransitionTime = 4; reason = 5; message = 6; }
const NAMESPACE_CONDITION: &[Field] = &[
    keep(1, "type", Str),
    keep(2, "status", Str),
    opt(4, "lastTransitionTime", Time),
    opt(5, "reason", Str),
    opt(6, "message", Str),
];

// message NamespaceSpec { repeated string finalizers = 1; }
const NAMESPACE_SPEC: &[Field] = &[rep(1, "finalizers", Str)];

// message NamespaceStatus { phase = 1; repeated NamespaceCondition conditions = 2; }
const NAMESPACE_STATUS: &[Field] = &[opt(1, "phase", Str), rep(2, "conditions", Msg(NAMESPACE_CONDITION))];

// message Namespace { metadata = 1; NamespaceSpec spec = 2; NamespaceStatus status = 3; }
const NAMESPACE: &[Field] = &[
    opt(1, "metadata", Msg(OBJECT_META)),
    opt(2, "spec", Msg(NAMESPACE_SPEC)),
    opt(3, "status", Msg(NAMESPACE_STATUS)),
];

// message ConfigMap { metadata = 1; immutable = 4 (*bool); map<string, string> data = 2;
//   map<string, bytes> binaryData = 3; }
const CONFIG_MAP: &[Field] = &[
    opt(1, "metadata", Msg(OBJECT_META)),
    keep(4, "immutable", Bool),
    opt(2, "data", MapStr),
    opt(3, "binaryData", MapBytes),
];

// message Secret { metadata = 1; immutable = 5 (*bool); map<string, bytes> data = 2;
//   map<string, string> stringData = 4; type = 3; }
const SECRET: &[Field] = &[
    opt(1, "metadata", Msg(OBJECT_META)),
    keep(5, "immutable", Bool),
    opt(2, "data", MapBytes),
    opt(4, "stringData", MapStr),
    opt(3, "type", Str),
];

// --- core/v1: Event ---------------------------------------------------------------------------------------------

// message EventSource { component = 1; host = 2; }
const EVENT_SOURCE: &[Field] = &[opt(1, "component", Str), opt(2, "host", Str)];

// message EventSeries { count = 1; MicroTime lastObservedTime = 2; }
const EVENT_SERIES: &[Field] = &[opt(1, "count", Int), opt(2, "lastObservedTime", MicroTime)];

// message Event { metadata = 1; involvedObject = 2; reason = 3; message = 4; source = 5; firstTimestamp = 6;
//   lastTimestamp = 7; count = 8; type = 9; MicroTime eventTime = 10; series = 11; action = 12; related = 13;
//   reportingComponent = 14; reportingInstance = 15; }
// reportingComponent / reportingInstance have no omitempty in Go, so they are kept even when empty.
const EVENT: &[Field] = &[
    opt(1, "metadata", Msg(OBJECT_META)),
    keep(2, "involvedObject", Msg(OBJECT_REFERENCE)),
    opt(3, "reason", Str),
    opt(4, "message", Str),
    opt(5, "source", Msg(EVENT_SOURCE)),
    opt(6, "firstTimestamp", Time),
    opt(7, "lastTimestamp", Time),
    opt(8, "count", Int),
    opt(9, "type", Str),
    opt(10, "eventTime", MicroTime),
    keep(11, "series", Msg(EVENT_SERIES)),
    opt(12, "action", Str),
    keep(13, "related", Msg(OBJECT_REFERENCE)),
    keep(14, "reportingComponent", Str),
    keep(15, "reportingInstance", Str),
];

// --- core/v1: Node ----------------------------------------------------------------------------------------------

// message Taint { key = 1; value = 2; effect = 3; Time timeAdded = 4 (*Time); }
const TAINT: &[Field] =
    &[keep(1, "key", Str), opt(2, "value", Str), keep(3, "effect", Str), keep(4, "timeAdded", Time)];

// message NodeSpec { podCIDR = 1; repeated podCIDRs = 7; providerID = 3; unschedulable = 4; taints = 5;
//   configSource = 6; externalID = 2; }  configSource (deprecated dynamic kubelet config) is not decoded.
const NODE_SPEC: &[Field] = &[
    opt(1, "podCIDR", Str),
    rep(7, "podCIDRs", Str),
    opt(3, "providerID", Str),
    opt(4, "unschedulable", Bool),
    rep(5, "taints", Msg(TAINT)),
    opt(2, "externalID", Str),
];

// message NodeCondition { type = 1; status = 2; lastHeartbeatTime = 3; lastTransitionTime = 4; reason = 5;
//   message = 6; }
const NODE_CONDITION: &[Field] = &[
    keep(1, "type", Str),
    keep(2, "status", Str),
    opt(3, "lastHeartbeatTime", Time),
    opt(4, "lastTransitionTime", Time),
    opt(5, "reason", Str),
    opt(6, "message", Str),
];

// message NodeAddress { type = 1; address = 2; }
const NODE_ADDRESS: &[Field] = &[keep(1, "type", Str), keep(2, "address", Str)];

// message DaemonEndpoint { int32 Port = 1; }  (the JSON name really is capitalised)
const DAEMON_ENDPOINT: &[Field] = &[keep(1, "Port", Int)];

// message NodeDaemonEndpoints { DaemonEndpoint kubeletEndpoint = 1; }
const NODE_DAEMON_ENDPOINTS: &[Field] = &[opt(1, "kubeletEndpoint", Msg(DAEMON_ENDPOINT))];

// message NodeSystemInfo { machineID = 1; systemUUID = 2; bootID = 3; kernelVersion = 4; osImage = 5;
//   containerRuntimeVersion = 6; kubeletVersion = 7; kubeProxyVersion = 8; operatingSystem = 9; architecture = 10;
//   swap = 11; }  swap is not decoded.
const NODE_SYSTEM_INFO: &[Field] = &[
    keep(1, "machineID", Str),
    keep(2, "systemUUID", Str),
    keep(3, "bootID", Str),
    keep(4, "kernelVersion", Str),
    keep(5, "osImage", Str),
    keep(6, "containerRuntimeVersion", Str),
    keep(7, "kubeletVersion", Str),
    keep(8, "kubeProxyVersion", Str),
    keep(9, "operatingSystem", Str),
    keep(10, "architecture", Str),
];

// message ContainerImage { repeated names = 1; int64 sizeBytes = 2; }
const CONTAINER_IMAGE: &[Field] = &[rep(1, "names", Str), opt(2, "sizeBytes", Int)];

// message NodeStatus { capacity = 1; allocatable = 2; phase = 3; conditions = 4; addresses = 5;
//   daemonEndpoints = 6; nodeInfo = 7; images = 8; volumesInUse = 9; ... }  later fields are not decoded.
const NODE_STATUS: &[Field] = &[
    opt(1, "capacity", MapQuantity),
    opt(2, "allocatable", MapQuantity),
    opt(3, "phase", Str),
    rep(4, "conditions", Msg(NODE_CONDITION)),
    rep(5, "addresses", Msg(NODE_ADDRESS)),
    opt(6, "daemonEndpoints", Msg(NODE_DAEMON_ENDPOINTS)),
    opt(7, "nodeInfo", Msg(NODE_SYSTEM_INFO)),
    rep(8, "images", Msg(CONTAINER_IMAGE)),
    rep(9, "volumesInUse", Str),
];

// message Node { metadata = 1; NodeSpec spec = 2; NodeStatus status = 3; }
const NODE: &[Field] =
    &[opt(1, "metadata", Msg(OBJECT_META)), opt(2, "spec", Msg(NODE_SPEC)), opt(3, "status", Msg(NODE_STATUS))];

// --- k8s.io/api batch/v1/generated.proto -------------------------------------------------------------------------

// message PodFailurePolicyOnExitCodesRequirement { containerName = 1 (*string); operator = 2;
//   repeated int32 values = 3; }
const POD_FAILURE_POLICY_ON_EXIT_CODES: &[Field] =
    &[keep(1, "containerName", Str), keep(2, "operator", Str), rep(3, "values", Int)];

// message PodFailurePolicyOnPodConditionsPattern { type = 1; status = 2; }
const POD_FAILURE_POLICY_ON_POD_CONDITIONS: &[Field] = &[keep(1, "type", Str), opt(2, "status", Str)];

// message PodFailurePolicyRule { action = 1; onExitCodes = 2; repeated onPodConditions = 3; }
const POD_FAILURE_POLICY_RULE: &[Field] = &[
    keep(1, "action", Str),
    keep(2, "onExitCodes", Msg(POD_FAILURE_POLICY_ON_EXIT_CODES)),
    rep(3, "onPodConditions", Msg(POD_FAILURE_POLICY_ON_POD_CONDITIONS)),
];

// message PodFailurePolicy { repeated PodFailurePolicyRule rules = 1; }
const POD_FAILURE_POLICY: &[Field] = &[rep(1, "rules", Msg(POD_FAILURE_POLICY_RULE))];

// message SuccessPolicyRule { succeededIndexes = 1 (*string); succeededCount = 2 (*int32); }
const SUCCESS_POLICY_RULE: &[Field] = &[keep(1, "succeededIndexes", Str), keep(2, "succeededCount", Int)];

// message SuccessPolicy { repeated SuccessPolicyRule rules = 1; }
const SUCCESS_POLICY: &[Field] = &[rep(1, "rules", Msg(SUCCESS_POLICY_RULE))];

// message JobSpec { parallelism = 1; completions = 2; activeDeadlineSeconds = 3; podFailurePolicy = 11;
//   successPolicy = 16; backoffLimit = 7; backoffLimitPerIndex = 12; maxFailedIndexes = 13; selector = 4;
//   manualSelector = 5; PodTemplateSpec template = 6; ttlSecondsAfterFinished = 8; completionMode = 9;
//   suspend = 10; podReplacementPolicy = 14; managedBy = 15; }
// Everything but template is a pointer in Go: `backoffLimit: 0` or `suspend: false` are kept.
const JOB_SPEC: &[Field] = &[
    keep(1, "parallelism", Int),
    keep(2, "completions", Int),
    keep(3, "activeDeadlineSeconds", Int),
    keep(11, "podFailurePolicy", Msg(POD_FAILURE_POLICY)),
    keep(16, "successPolicy", Msg(SUCCESS_POLICY)),
    keep(7, "backoffLimit", Int),
    keep(12, "backoffLimitPerIndex", Int),
    keep(13, "maxFailedIndexes", Int),
    keep(4, "selector", Msg(LABEL_SELECTOR)),
    keep(5, "manualSelector", Bool),
    keep(6, "template", Msg(POD_TEMPLATE_SPEC)),
    keep(8, "ttlSecondsAfterFinished", Int),
    keep(9, "completionMode", Str),
    keep(10, "suspend", Bool),
    keep(14, "podReplacementPolicy", Str),
    keep(15, "managedBy", Str),
];

// message Job { metadata = 1; JobSpec spec = 2; JobStatus status = 3; }  status is not decoded.
const JOB: &[Field] = &[opt(1, "metadata", Msg(OBJECT_META)), opt(2, "spec", Msg(JOB_SPEC))];

// --- k8s.io/api apps/v1/generated.proto --------------------------------------------------------------------------

// message RollingUpdateDeployment { IntOrString maxUnavailable = 1; IntOrString maxSurge = 2; }  (pointers)
const ROLLING_UPDATE_DEPLOYMENT: &[Field] = &[keep(1, "maxUnavailable", IntOrString), keep(2, "maxSurge", IntOrString)];

// message DeploymentStrategy { type = 1; RollingUpdateDeployment rollingUpdate = 2; }
const DEPLOYMENT_STRATEGY: &[Field] = &[opt(1, "type", Str), keep(2, "rollingUpdate", Msg(ROLLING_UPDATE_DEPLOYMENT))];

// message DeploymentSpec { replicas = 1; selector = 2; template = 3; strategy = 4; minReadySeconds = 5;
//   revisionHistoryLimit = 6; paused = 7; progressDeadlineSeconds = 9; podReplacementPolicy = 10; }
// replicas, revisionHistoryLimit, progressDeadlineSeconds and podReplacementPolicy are pointers.
const DEPLOYMENT_SPEC: &[Field] = &[
    keep(1, "replicas", Int),
    keep(2, "selector", Msg(LABEL_SELECTOR)),
    keep(3, "template", Msg(POD_TEMPLATE_SPEC)),
    opt(4, "strategy", Msg(DEPLOYMENT_STRATEGY)),
    opt(5, "minReadySeconds", Int),
    keep(6, "revisionHistoryLimit", Int),
    opt(7, "paused", Bool),
    keep(9, "progressDeadlineSeconds", Int),
    keep(10, "podReplacementPolicy", Str),
];

// message Deployment { metadata = 1; DeploymentSpec spec = 2; DeploymentStatus status = 3; }  status not decoded.
const DEPLOYMENT: &[Field] = &[opt(1, "metadata", Msg(OBJECT_META)), opt(2, "spec", Msg(DEPLOYMENT_SPEC))];

// message ReplicaSetSpec { replicas = 1 (*int32); minReadySeconds = 4; selector = 2; template = 3; }
const REPLICA_SET_SPEC: &[Field] = &[
    keep(1, "replicas", Int),
    opt(4, "minReadySeconds", Int),
    keep(2, "selector", Msg(LABEL_SELECTOR)),
    opt(3, "template", Msg(POD_TEMPLATE_SPEC)),
];

// message ReplicaSet { metadata = 1; ReplicaSetSpec spec = 2; ReplicaSetStatus status = 3; }  status not decoded.
const REPLICA_SET: &[Field] = &[opt(1, "metadata", Msg(OBJECT_META)), opt(2, "spec", Msg(REPLICA_SET_SPEC))];

// --- k8s.io/api coordination/v1/generated.proto ------------------------------------------------------------------

// message LeaseSpec { holderIdentity = 1; leaseDurationSeconds = 2; MicroTime acquireTime = 3;
//   MicroTime renewTime = 4; leaseTransitions = 5; strategy = 6; preferredHolder = 7; }  (all pointers)
const LEASE_SPEC: &[Field] = &[
    keep(1, "holderIdentity", Str),
    keep(2, "leaseDurationSeconds", Int),
    keep(3, "acquireTime", MicroTime),
    keep(4, "renewTime", MicroTime),
    keep(5, "leaseTransitions", Int),
    keep(6, "strategy", Str),
    keep(7, "preferredHolder", Str),
];

// message Lease { metadata = 1; LeaseSpec spec = 2; }
const LEASE: &[Field] = &[opt(1, "metadata", Msg(OBJECT_META)), opt(2, "spec", Msg(LEASE_SPEC))];

// ---------------------------------------------------------------------------------------------------------------
// The walker

/// Decode one message's fields into `out` (an object being built; `Inline` fields share their parent's).
fn decode_message(buf: &[u8], schema: &[Field], out: &mut Map<String, Value>) -> Result<()> {
    let mut r = Reader::new(buf);
    while !r.done() {
        let (num, wire) = r.tag()?;
        match schema.iter().find(|f| f.num == num) {
            Some(field) => decode_field(&mut r, wire, field, out).map_err(|e| e.within(field.name))?,
            // A field this schema does not know: a newer client's, or one deliberately left out. Skip it.
            None => r.skip(wire)?,
        }
    }
    Ok(())
}

fn decode_field(r: &mut Reader<'_>, wire: u8, f: &Field, out: &mut Map<String, Value>) -> Result<()> {
    if let Int | Bool = f.kind {
        // Repeated scalars may arrive packed (one length-delimited run of varints) whatever the .proto says;
        // parsers must accept both forms (https://protobuf.dev/programming-guides/encoding/#packed).
        if f.card == Card::Rep && wire == LEN {
            let mut packed = Reader::new(r.bytes()?);
            while !packed.done() {
                let v = packed.varint()?;
                push(out, f.name, scalar(f.kind, v));
            }
            return Ok(());
        }
        expect_wire(wire, VARINT)?;
        let v = r.varint()?;
        set(out, f, scalar(f.kind, v), v == 0);
        return Ok(());
    }
    expect_wire(wire, LEN)?;
    let b = r.bytes()?;
    match f.kind {
        Int | Bool => unreachable!("handled above"),
        Str => {
            let s = utf8(b)?;
            set(out, f, Value::String(s.to_string()), s.is_empty());
        }
        Time | MicroTime => {
            // metav1.Time marshals the zero time as an empty message (apimachinery meta/v1 time_proto.go); JSON
            // renders it as null, which is the same as leaving the field out.
            match decode_time(b, matches!(f.kind, MicroTime))? {
                Some(t) => set(out, f, Value::String(t), false),
                None if f.card == Card::Rep => push(out, f.name, Value::Null),
                None => {
                    out.remove(f.name);
                }
            }
        }
        Quantity => {
            let q = decode_quantity(b)?;
            match (q.is_empty(), f.card) {
                // A zero Quantity marshals as "0" in Go, but a value field left empty means unset.
                (true, Card::Keep) => set(out, f, Value::String("0".to_string()), false),
                (empty, _) => set(out, f, Value::String(q), empty),
            }
        }
        IntOrString => set(out, f, decode_int_or_string(b)?, false),
        MapStr | MapBytes | MapQuantity => {
            let (k, v) = decode_map_entry(b, f.kind)?;
            let slot = out.entry(f.name).or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let Value::Object(m) = slot {
                m.insert(k, v);
            }
        }
        Msg(schema) => {
            if f.card == Card::Rep {
                let mut m = Map::new();
                decode_message(b, schema, &mut m)?;
                push(out, f.name, Value::Object(m));
            } else {
                // A message field seen twice merges, as protobuf specifies. Present but empty stays `{}`:
                // encoding/json never omits a struct, and a pointer that was sent was set.
                let slot = out.entry(f.name).or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(m) = slot {
                    decode_message(b, schema, m)?;
                }
            }
        }
        Inline(schema) => decode_message(b, schema, out)?,
    }
    Ok(())
}

fn scalar(kind: Kind, v: u64) -> Value {
    match kind {
        Bool => Value::Bool(v != 0),
        // int32 and int64 are both sign-extended to 64 bits on the wire, so the two's-complement cast is exact.
        _ => Value::from(v as i64),
    }
}

/// Store a non-repeated (or append a repeated) value, dropping an omitempty field's zero value. A later
/// occurrence replaces an earlier one, as protobuf specifies for scalars.
fn set(out: &mut Map<String, Value>, f: &Field, v: Value, zero: bool) {
    match f.card {
        Card::Rep => push(out, f.name, v),
        Card::Omit if zero => {
            out.remove(f.name);
        }
        _ => {
            out.insert(f.name.to_string(), v);
        }
    }
}

fn push(out: &mut Map<String, Value>, name: &str, v: Value) {
    let slot = out.entry(name).or_insert_with(|| Value::Array(Vec::new()));
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    if let Value::Array(a) = slot {
        a.push(v);
    }
}

/// One map entry: `message { key = 1; value = 2; }` (https://protobuf.dev/programming-guides/proto2/#maps).
/// Missing key or value mean the zero value.
fn decode_map_entry(buf: &[u8], kind: Kind) -> Result<(String, Value)> {
    let mut key = String::new();
    let mut value: &[u8] = &[];
    let mut r = Reader::new(buf);
    while !r.done() {
        let (num, wire) = r.tag()?;
        match num {
            1 => {
                expect_wire(wire, LEN)?;
                key = utf8(r.bytes()?)?.to_string();
            }
            2 => {
                expect_wire(wire, LEN)?;
                value = r.bytes()?;
            }
            _ => r.skip(wire)?,
        }
    }
    let v = match kind {
        MapStr => Value::String(utf8(value)?.to_string()),
        MapBytes => Value::String(base64(value)),
        _ => {
            let q = decode_quantity(value)?;
            Value::String(if q.is_empty() { "0".to_string() } else { q })
        }
    };
    Ok((key, v))
}

/// `message Quantity { optional string string = 1; }` (k8s.io/apimachinery pkg/api/resource/generated.proto).
fn decode_quantity(buf: &[u8]) -> Result<String> {
    let mut s = String::new();
    let mut r = Reader::new(buf);
    while !r.done() {
        let (num, wire) = r.tag()?;
        if num == 1 {
            expect_wire(wire, LEN)?;
            s = utf8(r.bytes()?)?.to_string();
        } else {
            r.skip(wire)?;
        }
    }
    Ok(s)
}

/// `message IntOrString { optional int64 type = 1; optional int32 intVal = 2; optional string strVal = 3; }`
/// (k8s.io/apimachinery pkg/util/intstr/generated.proto); type 0 is Int, 1 is String.
fn decode_int_or_string(buf: &[u8]) -> Result<Value> {
    let (mut ty, mut int_val, mut str_val) = (0u64, 0u64, String::new());
    let mut r = Reader::new(buf);
    while !r.done() {
        let (num, wire) = r.tag()?;
        match num {
            1 | 2 => {
                expect_wire(wire, VARINT)?;
                let v = r.varint()?;
                if num == 1 {
                    ty = v;
                } else {
                    int_val = v;
                }
            }
            3 => {
                expect_wire(wire, LEN)?;
                str_val = utf8(r.bytes()?)?.to_string();
            }
            _ => r.skip(wire)?,
        }
    }
    match ty {
        0 => Ok(Value::from(int_val as i64 as i32)),
        1 => Ok(Value::String(str_val)),
        other => Err(Malformed::new(format!("IntOrString has unknown type {other}"))),
    }
}

/// `message Time { optional int64 seconds = 1; optional int32 nanos = 2; }` (also MicroTime), rendered as Go renders
/// them in JSON: Time as RFC 3339 in UTC with whole seconds, MicroTime with six fractional digits
/// (apimachinery meta/v1 time.go `MarshalJSON`, micro_time.go `RFC3339Micro`). `None` for the zero time.
fn decode_time(buf: &[u8], micro: bool) -> Result<Option<String>> {
    if buf.is_empty() {
        return Ok(None);
    }
    let (mut seconds, mut nanos) = (0i64, 0i64);
    let mut r = Reader::new(buf);
    while !r.done() {
        let (num, wire) = r.tag()?;
        match num {
            1 | 2 => {
                expect_wire(wire, VARINT)?;
                let v = r.varint()? as i64;
                if num == 1 {
                    seconds = v;
                } else {
                    nanos = v;
                }
            }
            _ => r.skip(wire)?,
        }
    }
    if !(0..1_000_000_000).contains(&nanos) {
        return Err(Malformed::new(format!("timestamp nanos {nanos} out of range")));
    }
    format_time(seconds, micro.then_some(nanos / 1000)).map(Some)
}

/// RFC 3339 in UTC. Go refuses to marshal years outside 0..=9999, and so does this.
fn format_time(seconds: i64, micros: Option<i64>) -> Result<String> {
    let (days, secs_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return Err(Malformed::new(format!("timestamp {seconds} is outside years 0000-9999")));
    }
    let (hh, mm, ss) = (secs_of_day / 3600, secs_of_day % 3600 / 60, secs_of_day % 60);
    Ok(match micros {
        None => format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z"),
        Some(us) => format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{us:06}Z"),
    })
}

/// Days since 1970-01-01 → proleptic Gregorian (year, month, day), after Howard Hinnant's `civil_from_days`
/// (http://howardhinnant.github.io/date_algorithms.html#civil_from_days).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Standard base64 with padding (RFC 4648 §4), which is how Go's encoding/json writes `[]byte`.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let n = (u32::from(chunk[0]) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        let sextet = |shift: u32| char::from(ALPHABET[((n >> shift) & 63) as usize]);
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if chunk.len() > 1 { sextet(6) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(0) } else { '=' });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // A tiny protobuf encoder, writing what gogo-protobuf writes for the Kubernetes types.

    #[derive(Clone, Default)]
    struct Enc(Vec<u8>);

    fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        buf.push(v as u8);
    }

    impl Enc {
        fn new() -> Self {
            Enc(Vec::new())
        }
        fn key(mut self, num: u32, wire: u8) -> Self {
            put_varint(&mut self.0, (u64::from(num) << 3) | u64::from(wire));
            self
        }
        fn int(self, num: u32, v: i64) -> Self {
            let mut s = self.key(num, VARINT);
            put_varint(&mut s.0, v as u64);
            s
        }
        fn bool(self, num: u32, v: bool) -> Self {
            self.int(num, i64::from(v))
        }
        fn bytes(self, num: u32, b: &[u8]) -> Self {
            let mut s = self.key(num, LEN);
            put_varint(&mut s.0, b.len() as u64);
            s.0.extend_from_slice(b);
            s
        }
        fn str(self, num: u32, v: &str) -> Self {
            self.bytes(num, v.as_bytes())
        }
        fn msg(self, num: u32, m: Enc) -> Self {
            self.bytes(num, &m.0)
        }
        fn fixed32(self, num: u32, v: u32) -> Self {
            let mut s = self.key(num, FIXED32);
            s.0.extend_from_slice(&v.to_le_bytes());
            s
        }
        fn fixed64(self, num: u32, v: u64) -> Self {
            let mut s = self.key(num, FIXED64);
            s.0.extend_from_slice(&v.to_le_bytes());
            s
        }
        /// A `map<string, string>` entry.
        fn entry(self, num: u32, k: &str, v: &str) -> Self {
            self.msg(num, Enc::new().str(1, k).str(2, v))
        }
        /// A `map<string, bytes>` entry.
        fn bytes_entry(self, num: u32, k: &str, v: &[u8]) -> Self {
            self.msg(num, Enc::new().str(1, k).bytes(2, v))
        }
        /// A `map<string, Quantity>` entry.
        fn quantity_entry(self, num: u32, k: &str, v: &str) -> Self {
            self.msg(num, Enc::new().str(1, k).msg(2, Enc::new().str(1, v)))
        }
    }

    /// The `k8s\0` + runtime.Unknown envelope around an object message.
    fn envelope(api_version: &str, kind: &str, raw: Enc) -> Vec<u8> {
        let unknown = Enc::new().msg(1, Enc::new().str(1, api_version).str(2, kind)).msg(2, raw);
        [MAGIC.as_slice(), &unknown.0[..]].concat()
    }

    /// ObjectMeta as gogo writes it for a client-built object: every non-pointer field, empty, and the zero
    /// creationTimestamp as an empty message.
    fn gogo_meta(name: &str, namespace: &str) -> Enc {
        Enc::new()
            .str(1, name)
            .str(2, "")
            .str(3, namespace)
            .str(4, "")
            .str(5, "")
            .str(6, "")
            .int(7, 0)
            .msg(8, Enc::new())
    }

    /// Container as gogo writes it: the empty non-pointer fields included.
    fn gogo_container(name: &str, image: &str, command: &[&str]) -> Enc {
        let mut c = Enc::new().str(1, name).str(2, image);
        for arg in command {
            c = c.str(3, arg);
        }
        c.str(5, "")
            .msg(8, Enc::new())
            .str(13, "")
            .str(14, "")
            .bool(16, false)
            .bool(17, false)
            .bool(18, false)
            .str(20, "")
    }

    /// PodSpec as gogo writes it around the given containers.
    fn gogo_pod_spec(containers: Vec<Enc>, restart_policy: &str) -> Enc {
        let mut s = Enc::new();
        for c in containers {
            s = s.msg(2, c);
        }
        s.str(3, restart_policy)
            .str(6, "")
            .str(8, "")
            .str(9, "")
            .str(10, "")
            .bool(11, false)
            .bool(12, false)
            .bool(13, false)
            .str(16, "")
            .str(17, "")
            .str(19, "")
            .str(24, "")
    }

    /// Re-serialising through the k8s-openapi type must give back the same JSON: every name decoded here is a real
    /// field of the kind, with the right JSON type (a misnamed field would be dropped, a mistyped one rejected).
    fn assert_round_trips<K>(v: &Value)
    where
        K: serde::de::DeserializeOwned + serde::Serialize,
    {
        let typed: K = serde_json::from_value(v.clone()).expect("decodes as the k8s-openapi type");
        assert_eq!(&serde_json::to_value(typed).expect("serialises"), v);
    }

    fn err(body: &[u8]) -> String {
        decode(body).expect_err("must fail").0
    }

    #[test]
    fn magic_is_recognised() {
        assert!(is_k8s_protobuf(b"k8s\0"));
        assert!(is_k8s_protobuf(&envelope("v1", "Namespace", Enc::new())));
        assert!(!is_k8s_protobuf(b""));
        assert!(!is_k8s_protobuf(b"k8s"));
        assert!(!is_k8s_protobuf(b"k8s\x01rest"));
        assert!(!is_k8s_protobuf(br#"{"kind":"Namespace"}"#));
    }

    #[test]
    fn delete_options_of_a_typed_delete() {
        // kubectl debug --replace: `metav1.NewDeleteOptions(0)`, only the set pointer written.
        let v = decode(&envelope("v1", "DeleteOptions", Enc::new().int(1, 0))).unwrap();
        assert_eq!(v, json!({"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0}));
        let raw = Enc::new().msg(2, Enc::new().str(1, "u-1")).bool(3, false).str(4, "Foreground").str(5, "All");
        let v = decode(&envelope("batch/v1", "DeleteOptions", raw)).unwrap();
        assert_eq!(v["preconditions"], json!({"uid": "u-1"}));
        assert_eq!((&v["orphanDependents"], &v["propagationPolicy"], &v["dryRun"]), (&json!(false), &json!("Foreground"), &json!(["All"])));
    }

    #[test]
    fn kubectl_create_job() {
        // kubectl create job hello --image=busybox -- echo hi
        let template = Enc::new()
            .msg(1, gogo_meta("", ""))
            .msg(2, gogo_pod_spec(vec![gogo_container("hello", "busybox", &["echo", "hi"])], "Never"));
        // JobStatus's non-pointer counters and completedIndexes, all zero (status is not decoded).
        let status = Enc::new().int(4, 0).int(5, 0).int(6, 0).str(7, "");
        let job = Enc::new().msg(1, gogo_meta("hello", "default")).msg(2, Enc::new().msg(6, template)).msg(3, status);
        let v = decode(&envelope("batch/v1", "Job", job)).unwrap();
        assert_eq!(
            v,
            json!({
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": "hello", "namespace": "default"},
                "spec": {"template": {
                    "metadata": {},
                    "spec": {
                        "containers": [{"name": "hello", "image": "busybox", "command": ["echo", "hi"], "resources": {}}],
                        "restartPolicy": "Never",
                    },
                }},
            })
        );
        assert_round_trips::<k8s_openapi::api::batch::v1::Job>(&v);
    }

    #[test]
    fn job_spec_pointers_keep_zero_values() {
        let spec = Enc::new()
            .int(1, 2)
            .int(2, 0)
            .int(7, 0)
            .bool(10, false)
            .str(9, "Indexed")
            .int(8, 100)
            .msg(
                4,
                Enc::new().entry(1, "app", "x").msg(2, Enc::new().str(1, "tier").str(2, "In").str(3, "a").str(3, "b")),
            )
            .bool(5, true)
            .msg(
                6,
                Enc::new()
                    .msg(1, gogo_meta("", ""))
                    .msg(2, gogo_pod_spec(vec![gogo_container("c", "i", &[])], "OnFailure")),
            );
        let v = decode(&envelope("batch/v1", "Job", Enc::new().msg(1, gogo_meta("j", "")).msg(2, spec))).unwrap();
        assert_eq!(v["spec"]["parallelism"], 2);
        assert_eq!(v["spec"]["completions"], 0);
        assert_eq!(v["spec"]["backoffLimit"], 0);
        assert_eq!(v["spec"]["suspend"], false);
        assert_eq!(v["spec"]["manualSelector"], true);
        assert_eq!(v["spec"]["completionMode"], "Indexed");
        assert_eq!(v["spec"]["ttlSecondsAfterFinished"], 100);
        assert_eq!(
            v["spec"]["selector"],
            json!({"matchLabels": {"app": "x"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]})
        );
        assert_round_trips::<k8s_openapi::api::batch::v1::Job>(&v);
    }

    #[test]
    fn kubectl_create_namespace() {
        // kubectl create namespace foo: spec and status are non-pointer structs, so gogo writes them (status with
        // its empty phase).
        let ns = Enc::new().msg(1, gogo_meta("foo", "")).msg(2, Enc::new()).msg(3, Enc::new().str(1, ""));
        let v = decode(&envelope("v1", "Namespace", ns)).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "foo"}, "spec": {}, "status": {}})
        );
        assert_round_trips::<k8s_openapi::api::core::v1::Namespace>(&v);
    }

    #[test]
    fn namespace_finalizers_and_status() {
        let ns = Enc::new().msg(1, gogo_meta("bar", "")).msg(2, Enc::new().str(1, "kubernetes")).msg(
            3,
            Enc::new().str(1, "Terminating").msg(
                2,
                Enc::new()
                    .str(1, "NamespaceDeletionContentFailure")
                    .str(2, "False")
                    .msg(4, Enc::new().int(1, 0))
                    .str(5, "")
                    .str(6, ""),
            ),
        );
        let v = decode(&envelope("v1", "Namespace", ns)).unwrap();
        assert_eq!(v["spec"], json!({"finalizers": ["kubernetes"]}));
        assert_eq!(
            v["status"],
            json!({"phase": "Terminating", "conditions": [{"type": "NamespaceDeletionContentFailure", "status": "False", "lastTransitionTime": "1970-01-01T00:00:00Z"}]})
        );
        assert_round_trips::<k8s_openapi::api::core::v1::Namespace>(&v);
    }

    #[test]
    fn kubectl_create_configmap() {
        // kubectl create configmap x --from-literal=a=b
        let cm = Enc::new().msg(1, gogo_meta("x", "default")).entry(2, "a", "b");
        let v = decode(&envelope("v1", "ConfigMap", cm)).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "default"}, "data": {"a": "b"}})
        );
        assert_round_trips::<k8s_openapi::api::core::v1::ConfigMap>(&v);
    }

    #[test]
    fn configmap_binary_data_and_immutable() {
        let cm = Enc::new().msg(1, gogo_meta("x", "")).bool(4, false).entry(2, "a", "b").entry(2, "c", "").bytes_entry(
            3,
            "bin",
            &[0, 0xff, 0x10],
        );
        let v = decode(&envelope("v1", "ConfigMap", cm)).unwrap();
        assert_eq!(v["immutable"], false, "a *bool is kept when false");
        assert_eq!(v["data"], json!({"a": "b", "c": ""}));
        assert_eq!(v["binaryData"], json!({"bin": "AP8Q"}));
        assert_round_trips::<k8s_openapi::api::core::v1::ConfigMap>(&v);
    }

    #[test]
    fn kubectl_create_secret_generic() {
        // kubectl create secret generic s --from-literal=k=v (type left empty: the server defaults it to Opaque)
        let secret = Enc::new().msg(1, gogo_meta("s", "default")).bytes_entry(2, "k", b"v").str(3, "");
        let v = decode(&envelope("v1", "Secret", secret)).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "default"}, "data": {"k": "dg=="}})
        );
        assert_round_trips::<k8s_openapi::api::core::v1::Secret>(&v);

        let typed = Enc::new()
            .msg(1, gogo_meta("s", ""))
            .bytes_entry(2, "k", b"value")
            .entry(4, "plain", "text")
            .str(3, "Opaque")
            .bool(5, true);
        let v = decode(&envelope("v1", "Secret", typed)).unwrap();
        assert_eq!(v["data"], json!({"k": "dmFsdWU="}));
        assert_eq!(v["stringData"], json!({"plain": "text"}));
        assert_eq!(v["type"], "Opaque");
        assert_eq!(v["immutable"], true);
        assert_round_trips::<k8s_openapi::api::core::v1::Secret>(&v);
    }

    #[test]
    fn deployment_with_int_or_string() {
        // kubectl create deployment web --image=nginx --replicas=3, with a rolling update strategy.
        let labels = || Enc::new().entry(1, "app", "web");
        let mut meta = gogo_meta("", "");
        meta = meta.entry(11, "app", "web");
        let spec = Enc::new()
            .int(1, 3)
            .msg(2, labels())
            .msg(3, Enc::new().msg(1, meta).msg(2, gogo_pod_spec(vec![gogo_container("nginx", "nginx", &[])], "")))
            .msg(
                4,
                Enc::new().str(1, "RollingUpdate").msg(
                    2,
                    Enc::new()
                        .msg(1, Enc::new().int(1, 0).int(2, 1).str(3, ""))
                        .msg(2, Enc::new().int(1, 1).int(2, 0).str(3, "25%")),
                ),
            )
            .int(5, 0)
            .int(6, 0)
            .bool(7, false)
            .int(9, 600);
        let v = decode(&envelope("apps/v1", "Deployment", Enc::new().msg(1, gogo_meta("web", "default")).msg(2, spec)))
            .unwrap();
        assert_eq!(
            v,
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {
                    "replicas": 3,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "nginx", "image": "nginx", "resources": {}}]},
                    },
                    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"}},
                    "revisionHistoryLimit": 0,
                    "progressDeadlineSeconds": 600,
                },
            })
        );
        assert_round_trips::<k8s_openapi::api::apps::v1::Deployment>(&v);
    }

    #[test]
    fn replica_set() {
        let spec = Enc::new().int(1, 0).int(4, 5).msg(2, Enc::new().entry(1, "app", "web")).msg(
            3,
            Enc::new()
                .msg(1, gogo_meta("", ""))
                .msg(2, gogo_pod_spec(vec![gogo_container("c", "busybox", &["sleep", "1"])], "Always")),
        );
        let v =
            decode(&envelope("apps/v1", "ReplicaSet", Enc::new().msg(1, gogo_meta("rs", "ns")).msg(2, spec))).unwrap();
        assert_eq!(v["spec"]["replicas"], 0, "*int32 replicas: 0 is kept");
        assert_eq!(v["spec"]["minReadySeconds"], 5);
        assert_eq!(v["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert_round_trips::<k8s_openapi::api::apps::v1::ReplicaSet>(&v);
    }

    #[test]
    fn int_or_string_forms() {
        let d = |ios: Enc| {
            let spec = Enc::new().msg(4, Enc::new().msg(2, Enc::new().msg(2, ios)));
            decode(&envelope("apps/v1", "Deployment", Enc::new().msg(2, spec)))
        };
        let surge = |v: Value| v["spec"]["strategy"]["rollingUpdate"]["maxSurge"].clone();
        assert_eq!(surge(d(Enc::new().int(1, 0).int(2, 7)).unwrap()), 7);
        assert_eq!(surge(d(Enc::new().int(2, -2)).unwrap()), -2, "type defaults to Int");
        assert_eq!(surge(d(Enc::new().int(1, 1).str(3, "50%")).unwrap()), "50%");
        assert_eq!(surge(d(Enc::new()).unwrap()), 0, "an empty IntOrString is the int 0");
        assert!(d(Enc::new().int(1, 2)).unwrap_err().0.contains("IntOrString"));
    }

    #[test]
    fn full_pod_round_trips() {
        let meta = gogo_meta("web-0", "prod")
            .entry(11, "app", "web")
            .entry(12, "note", "hello")
            .msg(
                13,
                Enc::new()
                    .str(1, "ReplicaSet")
                    .str(3, "web")
                    .str(4, "uid-1")
                    .str(5, "apps/v1")
                    .bool(6, true)
                    .bool(7, true),
            )
            .str(14, "example.com/cleanup")
            .int(10, 30)
            .msg(9, Enc::new().int(1, 1_700_000_000))
            .str(5, "0b0f")
            .int(7, 4);
        let selector = Enc::new().entry(1, "app", "web");
        let container = gogo_container("app", "nginx:1.27", &["nginx"])
            .str(4, "-g")
            .str(4, "daemon off;")
            .str(5, "/srv")
            .msg(6, Enc::new().str(1, "http").int(2, 0).int(3, 80).str(4, "TCP").str(5, ""))
            .msg(19, Enc::new().str(1, "CFG_").msg(2, Enc::new().msg(1, Enc::new().str(1, "cfg")).bool(2, true)))
            .msg(19, Enc::new().str(1, "").msg(3, Enc::new().msg(1, Enc::new().str(1, "sec"))))
            .msg(7, Enc::new().str(1, "A").str(2, "1"))
            .msg(7, Enc::new().str(1, "EMPTY").str(2, ""))
            .msg(
                7,
                Enc::new()
                    .str(1, "POD")
                    .str(2, "")
                    .msg(3, Enc::new().msg(1, Enc::new().str(1, "v1").str(2, "metadata.name"))),
            )
            .msg(
                7,
                Enc::new().str(1, "PASS").str(2, "").msg(
                    3,
                    Enc::new().msg(4, Enc::new().msg(1, Enc::new().str(1, "db")).str(2, "password").bool(3, false)),
                ),
            )
            .msg(
                7,
                Enc::new().str(1, "LIM").msg(
                    3,
                    Enc::new().msg(2, Enc::new().str(1, "").str(2, "limits.memory").msg(3, Enc::new().str(1, "1Mi"))),
                ),
            )
            .msg(
                8,
                Enc::new()
                    .quantity_entry(1, "cpu", "500m")
                    .quantity_entry(1, "memory", "128Mi")
                    .quantity_entry(2, "cpu", "250m"),
            )
            .msg(9, Enc::new().str(1, "data").bool(2, true).str(3, "/data").str(4, "sub").str(6, ""))
            .msg(
                10,
                Enc::new()
                    .msg(
                        1,
                        Enc::new().msg(
                            2,
                            Enc::new()
                                .str(1, "/healthz")
                                .msg(2, Enc::new().int(1, 1).str(3, "http"))
                                .str(3, "")
                                .str(4, "HTTP")
                                .msg(5, Enc::new().str(1, "X-A").str(2, "b")),
                        ),
                    )
                    .int(2, 5)
                    .int(3, 1)
                    .int(4, 10)
                    .int(5, 1)
                    .int(6, 3),
            )
            .msg(
                11,
                Enc::new()
                    .msg(1, Enc::new().msg(1, Enc::new().str(1, "cat").str(1, "/ready")))
                    .int(2, 0)
                    .int(3, 0)
                    .int(4, 0)
                    .int(5, 0)
                    .int(6, 0),
            )
            .msg(
                22,
                Enc::new()
                    .msg(1, Enc::new().msg(3, Enc::new().msg(1, Enc::new().int(2, 80)).str(2, "")))
                    .int(6, 30)
                    .int(7, 0),
            )
            .msg(12, Enc::new().msg(2, Enc::new().msg(1, Enc::new().str(1, "sh").str(1, "-c").str(1, "sleep 5"))))
            .msg(
                15,
                Enc::new()
                    .msg(1, Enc::new().str(1, "NET_ADMIN").str(2, "ALL"))
                    .bool(2, false)
                    .int(4, 0)
                    .bool(5, false)
                    .bool(6, true)
                    .bool(7, false)
                    .msg(11, Enc::new().str(1, "RuntimeDefault")),
            )
            .str(14, "IfNotPresent")
            .str(13, "/dev/termination-log")
            .str(20, "File");
        let init = gogo_container("init", "busybox", &["true"]).str(24, "Always");
        let spec = gogo_pod_spec(vec![container], "Always")
            .msg(20, init)
            .msg(
                1,
                Enc::new()
                    .str(1, "data")
                    .msg(2, Enc::new().msg(2, Enc::new().str(1, "Memory").msg(2, Enc::new().str(1, "64Mi")))),
            )
            .msg(
                1,
                Enc::new().str(1, "host").msg(2, Enc::new().msg(1, Enc::new().str(1, "/var/log").str(2, "Directory"))),
            )
            .msg(
                1,
                Enc::new().str(1, "cfg").msg(
                    2,
                    Enc::new().msg(
                        19,
                        Enc::new()
                            .msg(1, Enc::new().str(1, "app-config"))
                            .msg(2, Enc::new().str(1, "a").str(2, "a.txt").int(3, 0o400))
                            .int(3, 0o644)
                            .bool(4, true),
                    ),
                ),
            )
            .msg(
                1,
                Enc::new()
                    .str(1, "sec")
                    .msg(2, Enc::new().msg(6, Enc::new().str(1, "tls").int(3, 0o600).bool(4, false))),
            )
            .msg(1, Enc::new().str(1, "pvc").msg(2, Enc::new().msg(10, Enc::new().str(1, "claim").bool(2, false))))
            .msg(
                1,
                Enc::new().str(1, "proj").msg(
                    2,
                    Enc::new().msg(
                        26,
                        Enc::new()
                            .msg(1, Enc::new().msg(4, Enc::new().str(1, "").int(2, 3600).str(3, "token")))
                            .msg(
                                1,
                                Enc::new().msg(
                                    2,
                                    Enc::new().msg(
                                        1,
                                        Enc::new().str(1, "labels").msg(2, Enc::new().str(2, "metadata.labels")),
                                    ),
                                ),
                            )
                            .int(2, 420),
                    ),
                ),
            )
            .int(4, 0)
            .int(5, 600)
            .entry(7, "disk", "ssd")
            .str(8, "web-sa")
            .bool(21, false)
            .str(10, "node-1")
            .bool(11, true)
            .bool(27, false)
            .msg(
                14,
                Enc::new()
                    .int(2, 1000)
                    .int(6, 3000)
                    .bool(3, true)
                    .int(4, 4000)
                    .int(4, 5000)
                    .int(5, 2000)
                    .msg(7, Enc::new().str(1, "net.core.somaxconn").str(2, "1024")),
            )
            .msg(15, Enc::new().str(1, "regcred"))
            .msg(
                18,
                Enc::new()
                    .msg(
                        1,
                        Enc::new()
                            .msg(
                                1,
                                Enc::new()
                                    .msg(1, Enc::new().msg(1, Enc::new().str(1, "zone").str(2, "In").str(3, "a"))),
                            )
                            .msg(
                                2,
                                Enc::new().int(1, 10).msg(
                                    2,
                                    Enc::new().msg(2, Enc::new().str(1, "metadata.name").str(2, "NotIn").str(3, "n2")),
                                ),
                            ),
                    )
                    .msg(
                        3,
                        Enc::new().msg(1, Enc::new().msg(1, selector.clone()).str(3, "kubernetes.io/hostname")).msg(
                            2,
                            Enc::new().int(1, 50).msg(2, Enc::new().msg(1, selector).str(2, "other").str(3, "zone")),
                        ),
                    ),
            )
            .msg(
                22,
                Enc::new()
                    .str(1, "node.kubernetes.io/not-ready")
                    .str(2, "Exists")
                    .str(3, "")
                    .str(4, "NoExecute")
                    .int(5, 300),
            )
            .msg(22, Enc::new().str(1, "").str(2, "Exists").str(3, "").str(4, ""))
            .msg(23, Enc::new().str(1, "10.0.0.1").str(2, "db.local"))
            .int(25, 0)
            .msg(26, Enc::new().str(1, "1.1.1.1").str(2, "svc.local").msg(3, Enc::new().str(1, "ndots").str(2, "2")))
            .msg(28, Enc::new().str(1, "example.com/ready"))
            .str(29, "runc")
            .bool(30, false)
            .str(31, "Never")
            .quantity_entry(32, "cpu", "10m")
            .msg(
                33,
                Enc::new()
                    .int(1, 1)
                    .str(2, "zone")
                    .str(3, "DoNotSchedule")
                    .msg(4, Enc::new().entry(1, "app", "web"))
                    .int(5, 2),
            )
            .bool(35, false)
            .msg(36, Enc::new().str(1, "linux"))
            .bool(37, false)
            .msg(38, Enc::new().str(1, "gate"));
        let pod = Enc::new().msg(1, meta).msg(2, spec).msg(3, Enc::new().str(1, "Running"));
        let v = decode(&envelope("v1", "Pod", pod)).unwrap();

        assert_eq!(v["metadata"]["deletionTimestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(v["metadata"]["deletionGracePeriodSeconds"], 30);
        assert!(v.get("status").is_none(), "pod status is not decoded");
        let c = &v["spec"]["containers"][0];
        assert_eq!(c["ports"], json!([{"name": "http", "containerPort": 80, "protocol": "TCP"}]));
        assert_eq!(c["env"][1], json!({"name": "EMPTY"}));
        assert_eq!(c["env"][2]["valueFrom"], json!({"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}));
        assert_eq!(
            c["env"][3]["valueFrom"],
            json!({"secretKeyRef": {"name": "db", "key": "password", "optional": false}})
        );
        assert_eq!(
            c["envFrom"],
            json!([{"prefix": "CFG_", "configMapRef": {"name": "cfg", "optional": true}}, {"secretRef": {"name": "sec"}}])
        );
        assert_eq!(c["resources"], json!({"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "250m"}}));
        assert_eq!(c["livenessProbe"]["httpGet"]["port"], "http");
        assert_eq!(c["readinessProbe"], json!({"exec": {"command": ["cat", "/ready"]}}));
        assert_eq!(
            c["startupProbe"],
            json!({"tcpSocket": {"port": 80}, "failureThreshold": 30, "terminationGracePeriodSeconds": 0})
        );
        assert_eq!(
            c["securityContext"],
            json!({
                "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
                "privileged": false, "runAsUser": 0, "runAsNonRoot": false, "readOnlyRootFilesystem": true,
                "allowPrivilegeEscalation": false, "seccompProfile": {"type": "RuntimeDefault"},
            })
        );
        assert_eq!(v["spec"]["initContainers"][0]["restartPolicy"], "Always");
        assert_eq!(
            v["spec"]["volumes"][0],
            json!({"name": "data", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}})
        );
        assert_eq!(
            v["spec"]["volumes"][1],
            json!({"name": "host", "hostPath": {"path": "/var/log", "type": "Directory"}})
        );
        assert_eq!(
            v["spec"]["volumes"][2],
            json!({"name": "cfg", "configMap": {"name": "app-config", "items": [{"key": "a", "path": "a.txt", "mode": 256}], "defaultMode": 420, "optional": true}})
        );
        assert_eq!(v["spec"]["securityContext"]["supplementalGroups"], json!([4000, 5000]));
        assert_eq!(v["spec"]["hostNetwork"], true);
        assert_eq!(v["spec"]["enableServiceLinks"], false, "*bool kept when false");
        assert_eq!(v["spec"]["terminationGracePeriodSeconds"], 0, "*int64 kept when 0");
        assert_eq!(v["spec"]["priority"], 0);
        assert!(v["spec"].get("hostPID").is_none(), "plain bool false is omitted");
        assert_eq!(v["spec"]["tolerations"][1], json!({"operator": "Exists"}));
        assert_round_trips::<k8s_openapi::api::core::v1::Pod>(&v);
    }

    #[test]
    fn ephemeral_containers_inline_the_common_fields() {
        let ec = Enc::new()
            .msg(1, gogo_container("debugger", "busybox", &["sh"]).bool(16, true).bool(18, true))
            .str(2, "app");
        let spec = gogo_pod_spec(vec![gogo_container("app", "nginx", &[])], "").msg(34, ec);
        let v = decode(&envelope("v1", "Pod", Enc::new().msg(1, gogo_meta("p", "")).msg(2, spec))).unwrap();
        assert_eq!(
            v["spec"]["ephemeralContainers"],
            json!([{"name": "debugger", "image": "busybox", "command": ["sh"], "resources": {}, "stdin": true, "tty": true, "targetContainerName": "app"}])
        );
        assert_round_trips::<k8s_openapi::api::core::v1::Pod>(&v);
    }

    #[test]
    fn event() {
        let event = Enc::new()
            .msg(1, gogo_meta("web.17a", "default"))
            .msg(
                2,
                Enc::new()
                    .str(1, "Pod")
                    .str(2, "default")
                    .str(3, "web")
                    .str(4, "u1")
                    .str(5, "v1")
                    .str(6, "42")
                    .str(7, "spec.containers{app}"),
            )
            .str(3, "Pulled")
            .str(4, "Successfully pulled image")
            .msg(5, Enc::new().str(1, "kubelet").str(2, "node-1"))
            .msg(6, Enc::new().int(1, 1_700_000_000).int(2, 999_999_999))
            .msg(7, Enc::new().int(1, 1_700_000_060))
            .int(8, 2)
            .str(9, "Normal")
            .msg(10, Enc::new())
            .str(12, "")
            .str(14, "")
            .str(15, "");
        let v = decode(&envelope("v1", "Event", event)).unwrap();
        assert_eq!(
            v,
            json!({
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": "web.17a", "namespace": "default"},
                "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web", "uid": "u1", "apiVersion": "v1", "resourceVersion": "42", "fieldPath": "spec.containers{app}"},
                "reason": "Pulled",
                "message": "Successfully pulled image",
                "source": {"component": "kubelet", "host": "node-1"},
                "firstTimestamp": "2023-11-14T22:13:20Z",
                "lastTimestamp": "2023-11-14T22:14:20Z",
                "count": 2,
                "type": "Normal",
                "reportingComponent": "",
                "reportingInstance": "",
            })
        );
        assert_round_trips::<k8s_openapi::api::core::v1::Event>(&v);

        let series = Enc::new()
            .msg(2, Enc::new().str(3, "web"))
            .msg(1, gogo_meta("web.17b", "default"))
            .msg(10, Enc::new().int(1, 1_700_000_000).int(2, 123_456_789))
            .msg(11, Enc::new().int(1, 3).msg(2, Enc::new().int(1, 1_700_000_001)))
            .str(12, "Pulling")
            .msg(13, Enc::new().str(1, "Node").str(3, "node-1"))
            .str(14, "kubelet")
            .str(15, "kubelet-node-1");
        let v = decode(&envelope("v1", "Event", series)).unwrap();
        assert_eq!(v["eventTime"], "2023-11-14T22:13:20.123456Z");
        assert_eq!(v["series"], json!({"count": 3, "lastObservedTime": "2023-11-14T22:13:21.000000Z"}));
        assert_eq!(v["related"], json!({"kind": "Node", "name": "node-1"}));
        assert_eq!(v["reportingComponent"], "kubelet");
        assert_round_trips::<k8s_openapi::api::core::v1::Event>(&v);
    }

    #[test]
    fn node() {
        let node = Enc::new()
            .msg(1, gogo_meta("node-1", "").entry(11, "kubernetes.io/hostname", "node-1"))
            .msg(
                2,
                Enc::new()
                    .str(1, "10.244.0.0/24")
                    .str(7, "10.244.0.0/24")
                    .str(3, "")
                    .bool(4, true)
                    .msg(
                        5,
                        Enc::new()
                            .str(1, "node.kubernetes.io/unschedulable")
                            .str(2, "")
                            .str(3, "NoSchedule")
                            .msg(4, Enc::new().int(1, 1_700_000_000)),
                    )
                    .str(2, ""),
            )
            .msg(
                3,
                Enc::new()
                    .quantity_entry(1, "cpu", "2")
                    .quantity_entry(1, "pods", "110")
                    .quantity_entry(2, "cpu", "1900m")
                    .str(3, "")
                    .msg(
                        4,
                        Enc::new()
                            .str(1, "Ready")
                            .str(2, "True")
                            .msg(3, Enc::new().int(1, 1_700_000_000))
                            .msg(4, Enc::new())
                            .str(5, "KubeletReady")
                            .str(6, ""),
                    )
                    .msg(5, Enc::new().str(1, "InternalIP").str(2, "192.168.1.10"))
                    .msg(6, Enc::new().msg(1, Enc::new().int(1, 10250)))
                    .msg(
                        7,
                        Enc::new()
                            .str(1, "m")
                            .str(2, "s")
                            .str(3, "b")
                            .str(4, "6.1")
                            .str(5, "Debian")
                            .str(6, "k1s://0.1")
                            .str(7, "v1.33.0")
                            .str(8, "")
                            .str(9, "linux")
                            .str(10, "amd64"),
                    )
                    .msg(8, Enc::new().str(1, "busybox:latest").int(2, 4_000_000)),
            );
        let v = decode(&envelope("v1", "Node", node)).unwrap();
        assert_eq!(
            v["spec"],
            json!({"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"], "unschedulable": true, "taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule", "timeAdded": "2023-11-14T22:13:20Z"}]})
        );
        assert_eq!(v["status"]["daemonEndpoints"], json!({"kubeletEndpoint": {"Port": 10250}}));
        assert_eq!(
            v["status"]["conditions"][0],
            json!({"type": "Ready", "status": "True", "lastHeartbeatTime": "2023-11-14T22:13:20Z", "reason": "KubeletReady"})
        );
        assert_eq!(v["status"]["capacity"], json!({"cpu": "2", "pods": "110"}));
        assert_round_trips::<k8s_openapi::api::core::v1::Node>(&v);
    }

    #[test]
    fn lease_micro_times() {
        let spec = Enc::new()
            .str(1, "node-1")
            .int(2, 40)
            .msg(3, Enc::new().int(1, 1_700_000_000).int(2, 5_000))
            .msg(4, Enc::new().int(1, 1_700_000_010).int(2, 999_999_999))
            .int(5, 0);
        let v = decode(&envelope(
            "coordination.k8s.io/v1",
            "Lease",
            Enc::new().msg(1, gogo_meta("node-1", "kube-node-lease")).msg(2, spec),
        ))
        .unwrap();
        assert_eq!(
            v["spec"],
            json!({
                "holderIdentity": "node-1",
                "leaseDurationSeconds": 40,
                "acquireTime": "2023-11-14T22:13:20.000005Z",
                "renewTime": "2023-11-14T22:13:30.999999Z",
                "leaseTransitions": 0,
            })
        );
        assert_round_trips::<k8s_openapi::api::coordination::v1::Lease>(&v);
    }

    #[test]
    fn timestamps() {
        let meta_time = |t: Enc| {
            let v = decode(&envelope("v1", "ConfigMap", Enc::new().msg(1, Enc::new().str(1, "x").msg(8, t)))).unwrap();
            v["metadata"].get("creationTimestamp").cloned()
        };
        assert_eq!(meta_time(Enc::new()), None, "the zero time is an empty message and is omitted");
        assert_eq!(meta_time(Enc::new().int(1, 0)).unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(meta_time(Enc::new().int(1, 951_782_400)).unwrap(), "2000-02-29T00:00:00Z");
        assert_eq!(
            meta_time(Enc::new().int(1, 1_700_000_000).int(2, 500)).unwrap(),
            "2023-11-14T22:13:20Z",
            "Time drops nanos"
        );
        assert_eq!(meta_time(Enc::new().int(1, -1)).unwrap(), "1969-12-31T23:59:59Z");
        assert_eq!(meta_time(Enc::new().int(1, 253_402_300_799)).unwrap(), "9999-12-31T23:59:59Z");
        assert_eq!(meta_time(Enc::new().int(1, -62_135_596_800)).unwrap(), "0001-01-01T00:00:00Z");
        let e = decode(&envelope(
            "v1",
            "ConfigMap",
            Enc::new().msg(1, Enc::new().msg(8, Enc::new().int(1, 253_402_300_800))),
        ))
        .unwrap_err()
        .0;
        assert!(e.contains("metadata.creationTimestamp") && e.contains("9999"), "{e}");
        let e =
            decode(&envelope("v1", "ConfigMap", Enc::new().msg(1, Enc::new().msg(8, Enc::new().int(1, 1).int(2, -1)))))
                .unwrap_err()
                .0;
        assert!(e.contains("nanos"), "{e}");
    }

    #[test]
    fn unknown_fields_are_skipped() {
        // Fields of every skippable wire type, at the top level and nested, with numbers no schema uses.
        let container = gogo_container("c", "busybox", &["true"])
            .int(999, 7)
            .fixed32(1000, 0xdead_beef)
            .fixed64(1001, 1)
            .msg(1002, Enc::new().str(1, "future").int(2, 1));
        let spec = Enc::new()
            .msg(6, Enc::new().msg(2, gogo_pod_spec(vec![container], "Never")))
            .str(500, "a future JobSpec field");
        let job =
            Enc::new().int(77, 1).msg(1, gogo_meta("j", "").str(4242, "x")).fixed64(78, 9).msg(2, spec).fixed32(79, 3);
        let v = decode(&envelope("batch/v1", "Job", job)).unwrap();
        assert_eq!(
            v["spec"]["template"]["spec"]["containers"],
            json!([{"name": "c", "image": "busybox", "command": ["true"], "resources": {}}])
        );
        assert_eq!(v["metadata"], json!({"name": "j"}));

        // Known-but-undecoded fields (a pod's status, the envelope's unknown fields) are skipped too.
        let body = [
            envelope("v1", "Pod", Enc::new().msg(1, gogo_meta("p", "")).msg(3, Enc::new().str(1, "Pending"))),
            Enc::new().int(9, 1).0,
        ]
        .concat();
        assert_eq!(decode(&body).unwrap(), json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}));
    }

    #[test]
    fn truncated_input_is_an_error() {
        let job = Enc::new().msg(1, gogo_meta("hello", "default")).msg(
            2,
            Enc::new().msg(
                6,
                Enc::new().msg(2, gogo_pod_spec(vec![gogo_container("hello", "busybox", &["echo", "hi"])], "Never")),
            ),
        );
        let raw_len = job.0.len();
        let body = envelope("batch/v1", "Job", job);
        assert!(decode(&body).is_ok());
        // Every cut inside the object's bytes (or inside its length prefix) leaves a field overrunning its message.
        let raw_start = body.len() - raw_len;
        for cut in raw_start - 1..body.len() {
            let e = decode(&body[..cut]).expect_err(&format!("cut at {cut} must fail")).0;
            assert!(e.starts_with("malformed protobuf body"), "{e}");
        }
        // And a length that overruns the message is reported with where it was found.
        let e = err(&envelope("v1", "ConfigMap", Enc(vec![0x0a, 0x05, 0x0a, 0x10, b'x'])));
        assert!(e.contains("at metadata") && e.contains("overruns"), "{e}");
    }

    #[test]
    fn malformed_wire_data_is_an_error() {
        // A varint longer than 10 bytes.
        let e = err(&envelope(
            "v1",
            "ConfigMap",
            Enc(vec![0x38, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
        ));
        assert!(e.contains("varint"), "{e}");
        // Field number 0.
        assert!(err(&envelope("v1", "ConfigMap", Enc(vec![0x02, 0x00]))).contains("field number 0"));
        // Deprecated group wire types.
        assert!(err(&envelope("v1", "ConfigMap", Enc(vec![0x4b]))).contains("wire type 3"));
        // A known field with the wrong wire type: metadata (a message) sent as a varint.
        let e = err(&envelope("v1", "ConfigMap", Enc::new().int(1, 5)));
        assert!(e.contains("at metadata") && e.contains("wire type 0"), "{e}");
        // A string that is not UTF-8.
        let e = err(&envelope("v1", "ConfigMap", Enc::new().msg(1, Enc::new().bytes(1, &[0xff, 0xfe]))));
        assert!(e.contains("metadata.name") && e.contains("UTF-8"), "{e}");
        // Envelope-level damage: an empty body after the magic has no kind; garbage after it is malformed.
        assert!(err(b"k8s\0").contains("no kind"));
        assert!(err(b"k8s\0\x0a\xff").starts_with("malformed protobuf body"));
        // A Quantity with a mistyped field.
        let e = err(&envelope(
            "v1",
            "Node",
            Enc::new().msg(3, Enc::new().msg(1, Enc::new().str(1, "cpu").msg(2, Enc::new().int(1, 2)))),
        ));
        assert!(e.contains("status.capacity"), "{e}");
    }

    #[test]
    fn wrong_magic_is_an_error() {
        let mut body = envelope("v1", "Namespace", Enc::new().msg(1, gogo_meta("foo", "")));
        body[3] = 1;
        assert!(err(&body).contains("magic"));
        assert!(err(br#"{"apiVersion":"v1","kind":"Namespace"}"#).contains("magic"));
        assert!(err(b"").contains("magic"));
    }

    #[test]
    fn unsupported_kind_is_an_error_naming_it() {
        let e = err(&envelope("v1", "Service", Enc::new().msg(1, gogo_meta("svc", ""))));
        assert!(e.contains("Service") && e.contains("not supported in protobuf") && e.contains("JSON"), "{e}");
        // The group/version matters: a Deployment of another version is not one of ours.
        let e = err(&envelope("apps/v1beta1", "Deployment", Enc::new()));
        assert!(e.contains("Deployment") && e.contains("apps/v1beta1"), "{e}");
        let e = err(&envelope("events.k8s.io/v1", "Event", Enc::new()));
        assert!(e.contains("events.k8s.io/v1"), "{e}");
    }

    #[test]
    fn envelope_content_encoding_and_type() {
        let raw = Enc::new().msg(1, gogo_meta("x", ""));
        let with = |extra: Enc| {
            let unknown = Enc::new().msg(1, Enc::new().str(1, "v1").str(2, "ConfigMap")).msg(2, raw.clone());
            [MAGIC.as_slice(), &unknown.0[..], &extra.0[..]].concat()
        };
        assert!(decode(&with(Enc::new().str(3, "").str(4, ""))).is_ok(), "empty strings mean unset");
        assert!(decode(&with(Enc::new().str(4, CONTENT_TYPE))).is_ok());
        assert!(err(&with(Enc::new().str(3, "gzip"))).contains("gzip"));
        assert!(err(&with(Enc::new().str(4, "application/json"))).contains("application/json"));
    }

    #[test]
    fn later_scalars_win_and_messages_merge() {
        let meta = Enc::new().str(1, "first").str(1, "second").entry(11, "a", "1").str(2, "gen-").str(2, "");
        let cm =
            Enc::new().msg(1, meta).msg(1, Enc::new().entry(11, "b", "2")).entry(2, "k", "old").entry(2, "k", "new");
        let v = decode(&envelope("v1", "ConfigMap", cm)).unwrap();
        assert_eq!(v["metadata"], json!({"name": "second", "labels": {"a": "1", "b": "2"}}));
        assert_eq!(v["data"], json!({"k": "new"}));
    }

    #[test]
    fn packed_and_unpacked_repeated_ints() {
        let packed = |values: &[i64]| {
            let mut b = Vec::new();
            for &v in values {
                put_varint(&mut b, v as u64);
            }
            b
        };
        let sc = Enc::new().int(4, 1).bytes(4, &packed(&[2, 300])).int(4, -1);
        let spec = Enc::new().msg(14, sc);
        let v = decode(&envelope("v1", "Pod", Enc::new().msg(2, spec))).unwrap();
        assert_eq!(v["spec"]["securityContext"]["supplementalGroups"], json!([1, 2, 300, -1]));
        // A truncated packed run is malformed.
        let spec = Enc::new().msg(14, Enc::new().bytes(4, &[0x80]));
        assert!(err(&envelope("v1", "Pod", Enc::new().msg(2, spec))).contains("securityContext.supplementalGroups"));
    }

    #[test]
    fn map_entries_with_missing_parts() {
        let cm = Enc::new()
            .msg(2, Enc::new().str(1, "only-key"))
            .msg(2, Enc::new().str(2, "only-value"))
            .msg(3, Enc::new().str(1, "b"));
        let v = decode(&envelope("v1", "ConfigMap", cm)).unwrap();
        assert_eq!(v["data"], json!({"only-key": "", "": "only-value"}));
        assert_eq!(v["binaryData"], json!({"b": ""}));
        let node = Enc::new().msg(3, Enc::new().msg(1, Enc::new().str(1, "cpu")));
        assert_eq!(decode(&envelope("v1", "Node", node)).unwrap()["status"]["capacity"], json!({"cpu": "0"}));
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        // RFC 4648 §10.
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want);
        }
        assert_eq!(base64(&[0xfb, 0xff, 0xbf]), "+/+/");
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-719_468), (0, 3, 1));
    }
}
