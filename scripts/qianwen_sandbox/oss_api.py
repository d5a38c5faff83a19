"""The OSS side: PostObject (temporary storage uploads) and the bucket API oss2 uses."""

from __future__ import annotations

import time
from email.utils import formatdate
from urllib.parse import quote
from xml.etree import ElementTree

from .form_parser import BadBody, MultipartReader
from .oss_signing import OssError, authenticate, check_post_fields
from .ram import required_action, resource_for
from .state import MEDIA_TTL_SECONDS
from .store import AlreadyExists

MAX_POST_OBJECT_BYTES = 5 * 1024 ** 3


def split_bucket_key(path: str) -> tuple[str, str]:
    """``/bucket/url%2Fquoted%20key`` -> ("bucket", "url/quoted key")."""
    from urllib.parse import unquote

    bucket, _, key = path.lstrip("/").partition("/")
    return unquote(bucket), unquote(key)


def handle(h, state) -> None:
    bucket, key = split_bucket_key(h.route_path)
    content_type = h.headers.get("Content-Type", "")
    is_post_object = h.command == "POST" and not key and content_type.startswith("multipart/form-data")
    route = "postObject" if is_post_object else "oss"
    state.count(route)
    if h.apply_fault(route, xml=True):
        return
    try:
        if bucket not in (state.config.bucket, state.config.temp_bucket):
            raise OssError(404, "NoSuchBucket", "The specified bucket does not exist.")
        if is_post_object:
            post_object(h, state, bucket, content_type)
            return
        if bucket == state.config.temp_bucket:
            raise OssError(403, "AccessDenied", "Temporary storage objects cannot be read back.")
        cred = authenticate(h.command, bucket, key, h.query, dict(h.headers.items()),
                            state.credentials.get, state.config.region, now=state.now())
        _authorize(state, cred, h.command, h.query_dict, bucket, key)
        bucket_api(h, state, bucket, key)
    except OssError as err:
        h.finish_body()
        h.send_xml_error(err.status, err.code, err.message)
    except BadBody as err:
        h.close_connection = True
        h.send_xml_error(400, "InvalidArgument", str(err))


def _authorize(state, cred, method: str, query: dict, bucket: str, key: str) -> None:
    """RAM policy check for the main AccessKey (sandbox.py --ram-policy); OSS's own 403 when refused."""
    policy = state.config.ram_policy
    if policy is None or cred is not state.named.get("user"):
        return
    if not policy.allows(required_action(method, query, key), resource_for(state.config.region, bucket, key)):
        raise OssError(403, "AccessDenied", "You have no right to access this object because of bucket acl."
                       if key else "You have no right to access this bucket.")


# ---------------------------------------------------------------- PostObject

def post_object(h, state, bucket: str, content_type: str) -> None:
    boundary = ""
    for item in content_type.split(";")[1:]:
        name, _, value = item.strip().partition("=")
        if name.lower() == "boundary":
            boundary = value.strip('"')
    if not boundary:
        raise OssError(400, "InvalidArgument", "multipart/form-data without a boundary")
    form = MultipartReader(h.body(), boundary)
    fields: dict = {}
    while True:
        part = form.next_part()
        if part is None:
            raise OssError(400, "InvalidArgument", "The file field is missing.")
        if part.get("name", "").lower() == "file":
            break
        fields[part.get("name", "").lower()] = form.read_field()
    cred, policy = check_post_fields(fields, bucket, state.credentials.get, now=state.now())
    key = fields["key"]
    if len(key.encode("utf-8")) > 1023:
        raise OssError(400, "InvalidObjectName", "The object key is longer than 1023 bytes.")
    upper = policy.size_range[1] if policy.size_range[1] is not None else MAX_POST_OBJECT_BYTES
    writer = state.store.writer()
    try:
        size = form.stream_part(writer.write, limit=upper)
    except BaseException:
        writer.discard()
        raise
    if size > upper:
        writer.discard()
        h.finish_body()
        raise OssError(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size.")
    if size < policy.size_range[0]:
        writer.discard()
        raise OssError(400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size.")
    h.finish_body()   # fields after the file are ignored, as OSS does
    extra = {}
    upload_dir = key.rsplit("/", 1)[0]
    if bucket == state.config.temp_bucket and upload_dir in state.upload_dirs:
        account, model = state.upload_dirs[upload_dir]
        extra = {"account": account, "model": model, "expires_at": state.now() + MEDIA_TTL_SECONDS}
    forbid = fields.get("x-oss-forbid-overwrite", "false").lower() == "true"
    try:
        meta = state.store.commit(bucket, key, writer, fields.get("x-oss-content-type")
                                  or fields.get("content-type") or "application/octet-stream",
                                  forbid_overwrite=forbid, **extra)
    except AlreadyExists:
        raise OssError(409, "FileAlreadyExists", "The object you specified already exists and can not "
                       "be overwritten.") from None
    status = fields.get("success_action_status", "")
    headers = {"ETag": meta.etag}
    if status == "200":
        h.send_bytes(200, b"", "text/plain", headers)
    elif status == "201":
        loc = f"{state.oss_endpoint}/{bucket}/{quote(key)}"
        xml = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Bucket>{bucket}</Bucket>"
               f"<Location>{_esc(loc)}</Location><Key>{_esc(key)}</Key><ETag>{meta.etag}</ETag></PostResponse>")
        h.send_bytes(201, xml.encode(), "application/xml", headers)
    else:
        h.send_bytes(204, b"", "", headers)


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ---------------------------------------------------------------- bucket API

def _object_headers(meta) -> dict:
    return {
        "ETag": meta.etag,
        "Last-Modified": formatdate(meta.created, usegmt=True),
        "x-oss-object-type": "Multipart" if meta.multipart_parts else "Normal",
        "Accept-Ranges": "bytes",
    }


def _store_body(h, state, sha256: bool = True):
    writer = state.store.writer(sha256)
    body = h.body()
    try:
        while True:
            chunk = body.read()
            if not chunk:
                break
            writer.write(chunk)
    except BaseException:
        writer.discard()
        raise
    return writer


def _xml_key(h, key: str) -> str:
    return quote(key, safe="") if h.query_dict.get("encoding-type") == "url" else _esc(key)


def bucket_api(h, state, bucket: str, key: str) -> None:
    q = h.query_dict
    store = state.store
    method = h.command
    if not key:
        raise OssError(501, "NotImplemented", "Bucket-level operations are not implemented in the sandbox.")
    if method == "PUT" and "uploadId" in q:
        up = store.upload(q["uploadId"], bucket, key)
        if up is None:
            raise OssError(404, "NoSuchUpload", "The specified upload does not exist.")
        number = int(q.get("partNumber", "0") or 0)
        if not 1 <= number <= 10000:
            raise OssError(400, "InvalidArgument", "Part number must be between 1 and 10000.")
        etag = store.put_part(up, number, _store_body(h, state, sha256=False))
        h.send_bytes(200, b"", "", {"ETag": etag})
    elif method == "PUT":
        if "x-oss-copy-source" in {k.lower() for k in h.headers}:
            raise OssError(501, "NotImplemented", "Copy is not implemented in the sandbox.")
        forbid = h.headers.get("x-oss-forbid-overwrite", "false").lower() == "true"
        if forbid and store.get(bucket, key) is not None:
            h.finish_body()
            raise OssError(409, "FileAlreadyExists", "The object you specified already exists and can not "
                           "be overwritten.")
        writer = _store_body(h, state)
        try:
            meta = store.commit(bucket, key, writer, h.headers.get("Content-Type", "application/octet-stream"),
                                forbid_overwrite=forbid)
        except AlreadyExists:
            raise OssError(409, "FileAlreadyExists", "The object you specified already exists and can not "
                           "be overwritten.") from None
        h.send_bytes(200, b"", "", {"ETag": meta.etag})
    elif method == "POST" and "uploads" in q:
        upload_id = store.initiate(bucket, key, h.headers.get("Content-Type", "application/octet-stream"))
        h.finish_body()
        xml = (f"<InitiateMultipartUploadResult><Bucket>{bucket}</Bucket><Key>{_xml_key(h, key)}</Key>"
               f"<UploadId>{upload_id}</UploadId></InitiateMultipartUploadResult>")
        h.send_xml(200, xml)
    elif method == "POST" and "uploadId" in q:
        up = store.upload(q["uploadId"], bucket, key)
        if up is None:
            raise OssError(404, "NoSuchUpload", "The specified upload does not exist.")
        body = h.read_small_body()
        try:
            root = ElementTree.fromstring(body)  # noqa: S314 - sandbox-only, size-capped, from loopback clients
            wanted = [(int(p.findtext("PartNumber")), p.findtext("ETag") or "") for p in root.iter("Part")]
        except (ElementTree.ParseError, TypeError, ValueError):
            raise OssError(400, "MalformedXML", "The XML you provided was not well-formed.") from None
        if not wanted or [n for n, _ in wanted] != sorted({n for n, _ in wanted}):
            raise OssError(400, "InvalidPartOrder", "The list of parts was not in ascending order.")
        try:
            meta = store.complete(up, wanted)
        except KeyError:
            raise OssError(400, "InvalidPart", "One or more of the specified parts could not be found.") from None
        xml = (f"<CompleteMultipartUploadResult><Location>{state.oss_endpoint}/{bucket}/{quote(key)}</Location>"
               f"<Bucket>{bucket}</Bucket><Key>{_xml_key(h, key)}</Key><ETag>{meta.etag}</ETag>"
               f"</CompleteMultipartUploadResult>")
        h.send_xml(200, xml, {"ETag": meta.etag})
    elif method == "GET" and "uploadId" in q:
        up = store.upload(q["uploadId"], bucket, key)
        if up is None:
            raise OssError(404, "NoSuchUpload", "The specified upload does not exist.")
        parts = "".join(
            f"<Part><PartNumber>{n}</PartNumber><LastModified>"
            f"{time.strftime('%Y-%m-%dT%H:%M:%S.000Z', time.gmtime(created))}</LastModified>"
            f"<ETag>{etag}</ETag><Size>{size}</Size></Part>"
            for n, (_, size, etag, created) in sorted(up.parts.items()))
        last = max(up.parts) if up.parts else 0
        xml = (f"<ListPartsResult><Bucket>{bucket}</Bucket><Key>{_xml_key(h, key)}</Key>"
               f"<UploadId>{up.upload_id}</UploadId><PartNumberMarker>0</PartNumberMarker>"
               f"<NextPartNumberMarker>{last}</NextPartNumberMarker><MaxParts>1000</MaxParts>"
               f"<IsTruncated>false</IsTruncated>{parts}</ListPartsResult>")
        h.send_xml(200, xml)
    elif method == "DELETE" and "uploadId" in q:
        store.abort(q["uploadId"])
        h.send_bytes(204, b"", "")
    elif method in ("GET", "HEAD"):
        meta = store.get(bucket, key)
        if meta is None:
            raise OssError(404, "NoSuchKey", "The specified key does not exist.")
        h.send_file(meta.path, meta.size, meta.content_type, _object_headers(meta), head=method == "HEAD")
    elif method == "DELETE":
        store.delete(bucket, key)
        h.send_bytes(204, b"", "")
    else:
        raise OssError(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")
