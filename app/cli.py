"""Command-line tools: ``flask --app wsgi speech say ...`` and ``flask --app wsgi cdn reindex``."""

from __future__ import annotations

import sys
import time

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from app.errors import WarmlineError
from app.speech.wav import validate_ulaw_wav
from cdn.index import IndexEntry

speech_cli = AppGroup("speech", help="Synthesize and publish clips.")
cdn_cli = AppGroup("cdn", help="The audio store and its key index.")


def _runtime():
    return current_app.extensions["warmline"]


@speech_cli.command("say")
@click.argument("text")
@click.option("--business", "business_id", default="demo", show_default=True, help="Whose voice speaks.")
def say_command(text: str, business_id: str) -> None:
    """Publish TEXT as a clip in the business's voice; print its key, URL and duration."""
    rt = _runtime()
    business = rt.businesses.get(business_id)
    if business is None:
        raise click.UsageError(f"no business {business_id!r}; known: {', '.join(rt.businesses.ids())}")
    try:
        clip = rt.synthesizer.clip(text, business.voice)
    except WarmlineError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    url = clip.url
    if url.startswith("/"):
        url = (rt.settings.public_url or "http://127.0.0.1:8000").rstrip("/") + url
    click.echo(f"key       {clip.key}")
    click.echo(f"url       {url}")
    click.echo(f"duration  {clip.duration_s:.3f} s")
    click.echo(f"source    {clip.source}")


def reindex(runtime) -> tuple[int, int]:
    """Rebuild the key index from the store; returns (indexed, invalid). Invalid objects are reported, not indexed."""
    indexed = invalid = 0
    for name in runtime.store.list("tts/"):
        data = runtime.store.get(name)
        try:
            duration = validate_ulaw_wav(data)
        except WarmlineError as exc:
            click.echo(f"invalid  {name}: {exc}", err=True)
            invalid += 1
            continue
        key = name.rsplit("/", 1)[1][:-4]
        runtime.index.put(key, IndexEntry(runtime.store.url(name), name, len(data), duration, "reindex", time.time()))
        indexed += 1
    return indexed, invalid


@cdn_cli.command("reindex")
def reindex_command() -> None:
    """Rebuild the key index from what the store holds."""
    indexed, invalid = reindex(_runtime())
    click.echo(f"indexed {indexed} clips, {invalid} invalid")
    if invalid:
        sys.exit(1)


def init_app(app: Flask) -> None:
    app.cli.add_command(speech_cli)
    app.cli.add_command(cdn_cli)
