"""The stand-in hashicorp/aws provider as a Terraform plugin (go-plugin, tfplugin6, gRPC).

Terraform starts the plugin with TF_PLUGIN_MAGIC_COOKIE and PLUGIN_CLIENT_CERT set. The
plugin listens on a unix socket with mutual TLS (its own throwaway certificate, the client's
certificate as the only trusted root), prints the go-plugin handshake line
`1|6|unix|<socket>|grpc|<base64 DER certificate>` and serves tfplugin6.Provider plus the
go-plugin controller (Shutdown) and stdio services until Terraform stops it.

    EC2I_STANDIN_SCHEMA=<schema.json> python -m testkit.standin_aws.server
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import signal
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from tf.gen import grpc_controller_pb2
from tf.gen import tfplugin_pb2 as pb

from . import cty
from .provider import Provider

MAGIC_COOKIE_KEY = "TF_PLUGIN_MAGIC_COOKIE"
MAGIC_COOKIE = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2"

Json = dict[str, Any]

_NESTING_BLOCK = {"single": pb.Schema.NestedBlock.SINGLE, "list": pb.Schema.NestedBlock.LIST,
                  "set": pb.Schema.NestedBlock.SET, "map": pb.Schema.NestedBlock.MAP}
_NESTING_OBJECT = {"single": pb.Schema.Object.SINGLE, "list": pb.Schema.Object.LIST,
                   "set": pb.Schema.Object.SET, "map": pb.Schema.Object.MAP}


# --------------------------------------------------------------------------- schema


def _attribute(name: str, attr: Json) -> pb.Schema.Attribute:
    message = pb.Schema.Attribute(
        name=name, required=bool(attr.get("required")), optional=bool(attr.get("optional")),
        computed=bool(attr.get("computed")), sensitive=bool(attr.get("sensitive")))
    if "type" in attr:
        message.type = json.dumps(attr["type"]).encode()
    else:
        nested = attr["nested_type"]
        message.nested_type.CopyFrom(pb.Schema.Object(
            attributes=[_attribute(n, a) for n, a in sorted(nested["attributes"].items())],
            nesting=_NESTING_OBJECT[nested["nesting_mode"]]))
    return message


def _block(block: Json) -> pb.Schema.Block:
    return pb.Schema.Block(
        attributes=[_attribute(n, a) for n, a in sorted(block.get("attributes", {}).items())],
        block_types=[
            pb.Schema.NestedBlock(type_name=n, block=_block(b["block"]),
                                  nesting=_NESTING_BLOCK[b["nesting_mode"]],
                                  min_items=b.get("min_items", 0),
                                  max_items=b.get("max_items", 0))
            for n, b in sorted(block.get("block_types", {}).items())
        ])


def schema_response(schema: Json) -> pb.GetProviderSchema.Response:
    """The GetProviderSchema answer for a generated schema (cached as bytes by install)."""
    def entry(item: Json) -> pb.Schema:
        return pb.Schema(version=item.get("version", 0), block=_block(item["block"]))

    response = pb.GetProviderSchema.Response(provider=entry(schema["provider"]))
    for name, item in schema["resource_schemas"].items():
        response.resource_schemas[name].CopyFrom(entry(item))
    for name, item in schema["data_source_schemas"].items():
        response.data_source_schemas[name].CopyFrom(entry(item))
    response.server_capabilities.plan_destroy = True
    return response


# --------------------------------------------------------------------------- service


def _attribute_path(path: tuple[str | int, ...]) -> pb.AttributePath:
    return pb.AttributePath(steps=[
        pb.AttributePath.Step(element_key_int=step) if isinstance(step, int)
        else pb.AttributePath.Step(attribute_name=step) for step in path])


def _error(summary: str, detail: str = "") -> pb.Diagnostic:
    return pb.Diagnostic(severity=pb.Diagnostic.ERROR, summary=summary, detail=detail)


class ProviderService:
    """tfplugin6.Provider over the pure logic in provider.py."""

    def __init__(self, schema: Json, schema_bytes: bytes | None, stop: threading.Event) -> None:
        self.schema = schema
        self.schema_bytes = schema_bytes
        self.provider = Provider(schema)
        self.stop = stop
        # cty types on first use: a command touches a handful of the ~2,400 types, and
        # working them all out at every start would cost more than the command.
        self._types: dict[tuple[str, str], Any] = {}
        self.provider_type = cty.block_type(schema["provider"]["block"])

    def cty_type(self, kind: str, name: str) -> Any:
        key = (kind, name)
        if key not in self._types:
            section = "resource_schemas" if kind == "resource" else "data_source_schemas"
            self._types[key] = cty.block_type(self.schema[section][name]["block"])
        return self._types[key]

    def _decode(self, value: pb.DynamicValue, kind: str, name: str) -> Any:
        cty_type = self.cty_type(kind, name)
        if value.msgpack:
            return cty.unpack(value.msgpack, cty_type)
        if value.json:
            return cty.from_json(json.loads(value.json), cty_type)
        return None

    def _encode(self, value: Any, kind: str, name: str) -> pb.DynamicValue:
        return pb.DynamicValue(msgpack=cty.pack(value, self.cty_type(kind, name)))

    # Each handler takes the request message and returns the response message (or bytes).

    def GetProviderSchema(self, request: pb.GetProviderSchema.Request) -> Any:
        if self.schema_bytes is not None:
            return self.schema_bytes
        return schema_response(self.schema)

    def GetMetadata(self, request: pb.GetMetadata.Request) -> pb.GetMetadata.Response:
        response = pb.GetMetadata.Response()
        response.server_capabilities.plan_destroy = True
        for name in self.schema["resource_schemas"]:
            response.resources.add(type_name=name)
        for name in self.schema["data_source_schemas"]:
            response.data_sources.add(type_name=name)
        return response

    def ValidateProviderConfig(self, request: Any) -> pb.ValidateProviderConfig.Response:
        return pb.ValidateProviderConfig.Response()

    def ValidateResourceConfig(self, request: Any) -> pb.ValidateResourceConfig.Response:
        return pb.ValidateResourceConfig.Response()

    def ValidateDataResourceConfig(self, request: Any) -> pb.ValidateDataResourceConfig.Response:
        return pb.ValidateDataResourceConfig.Response()

    def ConfigureProvider(self, request: pb.ConfigureProvider.Request
                          ) -> pb.ConfigureProvider.Response:
        config = cty.unpack(request.config.msgpack, self.provider_type) or {}
        self.provider.configure(config)
        return pb.ConfigureProvider.Response()

    def UpgradeResourceState(self, request: pb.UpgradeResourceState.Request
                             ) -> pb.UpgradeResourceState.Response:
        raw = json.loads(request.raw_state.json) if request.raw_state.json else None
        value = cty.from_json(raw, self.cty_type("resource", request.type_name))
        return pb.UpgradeResourceState.Response(
            upgraded_state=self._encode(value, "resource", request.type_name))

    def ReadResource(self, request: pb.ReadResource.Request) -> pb.ReadResource.Response:
        return pb.ReadResource.Response(new_state=request.current_state, private=request.private)

    def PlanResourceChange(self, request: pb.PlanResourceChange.Request
                           ) -> pb.PlanResourceChange.Response:
        name = request.type_name
        prior = self._decode(request.prior_state, "resource", name)
        proposed = self._decode(request.proposed_new_state, "resource", name)
        planned = self.provider.plan(name, prior, proposed)
        replace = [_attribute_path(path)
                   for path in self.provider.requires_replace(name, prior, planned)]
        return pb.PlanResourceChange.Response(
            planned_state=self._encode(planned, "resource", name), requires_replace=replace,
            planned_private=request.prior_private, legacy_type_system=True)

    def ApplyResourceChange(self, request: pb.ApplyResourceChange.Request
                            ) -> pb.ApplyResourceChange.Response:
        name = request.type_name
        planned = self._decode(request.planned_state, "resource", name)
        prior = self._decode(request.prior_state, "resource", name)
        failure = self.provider.create_failure(name) if prior is None and planned else None
        if failure is not None:
            return pb.ApplyResourceChange.Response(diagnostics=[_error(failure)])
        state = self.provider.apply(name, planned, prior)
        return pb.ApplyResourceChange.Response(
            new_state=self._encode(state, "resource", name), private=request.planned_private,
            legacy_type_system=True)

    def ReadDataSource(self, request: pb.ReadDataSource.Request) -> pb.ReadDataSource.Response:
        name = request.type_name
        config = self._decode(request.config, "data", name) or {}
        state = self.provider.read_data(name, config)
        return pb.ReadDataSource.Response(state=self._encode(state, "data", name))

    def ImportResourceState(self, request: pb.ImportResourceState.Request
                            ) -> pb.ImportResourceState.Response:
        return pb.ImportResourceState.Response(diagnostics=[_error(
            "Import is not supported by the stand-in provider",
            "The offline hashicorp/aws stand-in has no AWS account to import from.")])

    def StopProvider(self, request: pb.StopProvider.Request) -> pb.StopProvider.Response:
        return pb.StopProvider.Response()


_REQUESTS: dict[str, Any] = {
    "GetProviderSchema": pb.GetProviderSchema.Request,
    "GetMetadata": pb.GetMetadata.Request,
    "ValidateProviderConfig": pb.ValidateProviderConfig.Request,
    "ValidateResourceConfig": pb.ValidateResourceConfig.Request,
    "ValidateDataResourceConfig": pb.ValidateDataResourceConfig.Request,
    "ConfigureProvider": pb.ConfigureProvider.Request,
    "UpgradeResourceState": pb.UpgradeResourceState.Request,
    "ReadResource": pb.ReadResource.Request,
    "PlanResourceChange": pb.PlanResourceChange.Request,
    "ApplyResourceChange": pb.ApplyResourceChange.Request,
    "ReadDataSource": pb.ReadDataSource.Request,
    "ImportResourceState": pb.ImportResourceState.Request,
    "StopProvider": pb.StopProvider.Request,
}


def _serialize(message: Any) -> bytes:
    return message if isinstance(message, bytes) else message.SerializeToString()


def _unary(call: Callable[[Any], Any], name: str) -> Callable[[Any, grpc.ServicerContext], Any]:
    def handle(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return call(request)
        except Exception as error:
            traceback.print_exc(file=sys.stderr)
            response_type = getattr(pb, name).Response
            if "diagnostics" in response_type.DESCRIPTOR.fields_by_name:
                return response_type(diagnostics=[_error(
                    f"stand-in aws provider failed in {name}", f"{type(error).__name__}: {error}")])
            context.abort(grpc.StatusCode.INTERNAL, str(error))
    return handle


def handlers(service: ProviderService, stop: threading.Event) -> list[grpc.GenericRpcHandler]:
    provider = {
        name: grpc.unary_unary_rpc_method_handler(
            _unary(getattr(service, name), name), request_deserializer=request.FromString,
            response_serializer=_serialize)
        for name, request in _REQUESTS.items()
    }

    def shutdown(request: Any, context: grpc.ServicerContext) -> Any:
        stop.set()
        return grpc_controller_pb2.Empty()

    def stdio(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        # Our logs go to stderr, which go-plugin already relays; nothing to stream.
        return iter(())

    return [
        grpc.method_handlers_generic_handler("tfplugin6.Provider", provider),
        grpc.method_handlers_generic_handler("plugin.GRPCController", {
            "Shutdown": grpc.unary_unary_rpc_method_handler(
                shutdown, request_deserializer=grpc_controller_pb2.Empty.FromString,
                response_serializer=_serialize)}),
        grpc.method_handlers_generic_handler("plugin.GRPCStdio", {
            "StreamStdio": grpc.unary_stream_rpc_method_handler(
                stdio, request_deserializer=lambda b: b,
                response_serializer=lambda m: m.SerializeToString())}),
    ]


# --------------------------------------------------------------------------- handshake


def _certificate() -> tuple[bytes, bytes, bytes]:
    """A throwaway CA certificate for localhost: (key PEM, cert PEM, cert DER)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "HashiCorp"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=True,
            data_encipherment=False, key_agreement=True, key_cert_sign=True, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, cert.public_bytes(serialization.Encoding.PEM), cert.public_bytes(
        serialization.Encoding.DER)


def load_schema(path: Path) -> tuple[Json, bytes | None]:
    schema = json.loads(path.read_text())
    cached = path.with_suffix(".pb")
    return schema, cached.read_bytes() if cached.exists() else None


def serve(schema_path: Path) -> int:
    if os.environ.get(MAGIC_COOKIE_KEY) != MAGIC_COOKIE:
        print("This binary is a plugin (the offline stand-in for hashicorp/aws). It is not "
              "meant to be run directly; Terraform starts it.", file=sys.stderr)
        return 1
    # Like go-plugin servers: Ctrl-C goes to Terraform, which stops us through Shutdown.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    schema, schema_bytes = load_schema(schema_path)
    stop = threading.Event()
    service = ProviderService(schema, schema_bytes, stop)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers(handlers(service, stop))
    key_pem, cert_pem, cert_der = _certificate()
    # go-plugin's AutoMTLS: Terraform pins the certificate we print in the handshake and
    # offers its own (PLUGIN_CLIENT_CERT, ECDSA P-521). grpcio's TLS stack does not get a
    # P-521 client certificate offered back, so we trust it as a root but do not demand it.
    client_cert = os.environ.get("PLUGIN_CLIENT_CERT", "").encode()
    credentials = grpc.ssl_server_credentials(
        [(key_pem, cert_pem)], root_certificates=client_cert or None, require_client_auth=False)
    with tempfile.TemporaryDirectory(prefix="standin-aws-") as directory:
        socket = os.path.join(directory, "plugin.sock")
        server.add_secure_port(f"unix:{socket}", credentials)
        server.start()
        certificate = base64.b64encode(cert_der).decode().rstrip("=")
        sys.stdout.write(f"1|6|unix|{socket}|grpc|{certificate}\n")
        sys.stdout.flush()
        stop.wait()
        # go-plugin waits for the process to exit after Shutdown (killing it after 2 s):
        # give the Shutdown answer a moment to leave, then go at once.
        server.stop(grace=0.05).wait(0.2)
    sys.stderr.flush()
    os._exit(0)


def main() -> int:
    schema = os.environ.get("EC2I_STANDIN_SCHEMA")
    if not schema:
        print("EC2I_STANDIN_SCHEMA must name the generated schema JSON", file=sys.stderr)
        return 1
    return serve(Path(schema))


if __name__ == "__main__":
    sys.exit(main())
