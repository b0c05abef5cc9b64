"""Render (or check) the edge's query-string allow-list in the project's VCL (--path, default
settings.TIERED_CACHE_VCL_PATH) from the URLconf's @cache_public policies (caching/edge_vcl.py)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from caching import edge_vcl


class Command(BaseCommand):
    help = "Render the generated block of the project's VCL from the public views' policies."

    def add_arguments(self, parser):
        parser.add_argument("--path", default=None, help="the VCL file (default: settings.TIERED_CACHE_VCL_PATH)")
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--check", action="store_true", help="fail if the file does not match the code")
        mode.add_argument("--write", action="store_true", help="write the rendered block into the file")

    def handle(self, *args, path, check, write, **options):
        if path is None and (check or write):
            path = edge_vcl.default_vcl_path()
            if path is None:
                raise CommandError("no VCL file: pass --path or set TIERED_CACHE_VCL_PATH")
        if path is None:
            self.stdout.write(edge_vcl.render_block())
            return
        path = Path(path)
        current = path.read_text()
        try:
            rendered = edge_vcl.render_vcl(current)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if write:
            if rendered != current:
                path.write_text(rendered)
            self.stdout.write(f"{path}: {len(edge_vcl.public_routes())} public routes")
        elif check:
            if rendered != current:
                raise CommandError(
                    f"{path} does not match the public views' parameters: run `manage.py edge_vcl --write`"
                )
            self.stdout.write(f"{path}: up to date")
        else:
            self.stdout.write(edge_vcl.render_block())
