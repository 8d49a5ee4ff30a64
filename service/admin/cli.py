"""``persona admin-token``: create, list and revoke admin API tokens."""

from __future__ import annotations

import argparse
import asyncio
import sys

from service.admin.tokens import SCOPES, TokenError, TokenStore
from service.store.address import redis_client_for


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Register ``admin-token`` and its actions."""
    tok = sub.add_parser(
        "admin-token",
        help="create, list or revoke admin API tokens",
        description="Admin API tokens live in Redis as SHA-256 hashes; a new token is "
        "printed once. Needs PERSONA_REDIS_URL (the service prints its Redis at start).",
    )
    actions = tok.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a token and print it once")
    create.add_argument("--name", required=True, help="who or what uses it (shown in history)")
    create.add_argument(
        "--scope",
        action="append",
        required=True,
        choices=SCOPES,
        help="a scope to grant (repeat for several)",
    )
    actions.add_parser("list", help="list tokens (names and scopes, never the tokens)")
    revoke = actions.add_parser("revoke", help="revoke a token by name")
    revoke.add_argument("--name", required=True)
    return tok


def run(redis_url: str | None, args: argparse.Namespace) -> int:
    """Carry out one ``admin-token`` action."""
    if redis_url is None:
        print("persona: admin-token needs PERSONA_REDIS_URL", file=sys.stderr)
        return 2

    async def act() -> int:
        client = redis_client_for(redis_url, timeout_s=10)
        store = TokenStore(client)
        try:
            if args.action == "create":
                token = await store.create(args.name, list(args.scope))
                print(token)
                print(f"token {args.name!r} created; it is shown only now", file=sys.stderr)
            elif args.action == "list":
                for p in await store.list():
                    print(f"{p.name}\t{','.join(sorted(p.scopes))}")
            elif not await store.revoke(args.name):
                print(f"persona: no token named {args.name!r}", file=sys.stderr)
                return 1
            return 0
        except TokenError as exc:
            print(f"persona: {exc}", file=sys.stderr)
            return 2
        finally:
            await client.aclose()

    return asyncio.run(act())


def add_model_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register ``model`` and its actions."""
    mod = sub.add_parser(
        "model",
        help="register a model bundle in the registry (then activate it in the admin API)",
        description="Verify a bundle folder (manifest, hash, feature schema) and store it in "
        "the Redis registry. Needs PERSONA_REDIS_URL.",
    )
    actions = mod.add_subparsers(dest="action", required=True)
    reg = actions.add_parser("register", help="store a verified bundle under its version")
    reg.add_argument("--dir", required=True, help="the bundle folder (model.txt, manifest.json)")
    reg.add_argument("--by", default="cli", help="who registers it (shown in the list)")
    return mod


def run_model(redis_url: str | None, args: argparse.Namespace) -> int:
    """Carry out one ``model`` action."""
    from pathlib import Path

    from service.admin.models import ModelError, ModelRegistry
    from service.scoring.bundle import BundleError, load_bundle

    if redis_url is None:
        print("persona: model needs PERSONA_REDIS_URL", file=sys.stderr)
        return 2
    try:
        bundle = load_bundle(Path(args.dir))
    except BundleError as exc:
        print(f"persona: {exc}", file=sys.stderr)
        return 2

    async def act() -> int:
        client = redis_client_for(redis_url, timeout_s=30)
        try:
            await ModelRegistry(client).register(bundle, args.by)
        except ModelError as exc:
            print(f"persona: {exc}", file=sys.stderr)
            return 2
        finally:
            await client.aclose()
        print(f"registered model {bundle.manifest.version}")
        return 0

    return asyncio.run(act())
