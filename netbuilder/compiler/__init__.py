"""The compiler: a validated Spec planned on the meta device (nodes, shapes, whole-network
checks, the head rule), then assembled into an nn.Module; and a plan written back as a plain
spec. Everything here needs torch; nothing here reads files or prints."""

from .build import build_model, checked_plan, compile_for_summary, compile_spec

__all__ = ["build_model", "checked_plan", "compile_for_summary", "compile_spec"]
