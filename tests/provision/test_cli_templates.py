"""``databases drop`` leaves a template alone while a run clones it (holds its shared lock)."""

import asyncio
import os
import secrets
import subprocess
import sys
import time
import unittest
from pathlib import Path

from test_framework.backends import backend_for
from test_framework.config import project_settings
from test_framework.provision.ownership import template_label
from test_framework.provision.templates import template_lock

ROOT = Path(__file__).resolve().parents[2]


class TestDropSparesATemplateInUse(unittest.TestCase):
    def setUp(self):
        self.backend = backend_for(project_settings().database_url)
        self.name = f"test_tpl_cli_{secrets.token_hex(4)}"
        self.url = self.backend.database_url(self.name, kept=True)
        asyncio.run(self.backend.create_database(
            self.url, label=template_label(self.backend.stem, time.time())))
        self.addCleanup(lambda: asyncio.run(self.backend.drop_database(self.url)))

    def drop(self) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "test_framework.provision", "drop", self.name],
            cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=120)

    def exists(self) -> bool:
        return asyncio.run(self.backend.database_exists(self.url))

    def test_a_template_being_cloned_stays_and_goes_once_free(self):
        async def drop_while_cloned():
            async with self.backend.shared(template_lock(self.name)):
                return await asyncio.to_thread(self.drop)

        refused = asyncio.run(asyncio.wait_for(drop_while_cloned(), 150))
        self.assertIn(f"not dropped: template {self.name} is being cloned by a run",
                      refused.stderr)
        self.assertTrue(self.exists())
        dropped = self.drop()
        self.assertIn(f"dropped {self.name}", dropped.stdout, dropped.stderr)
        self.assertFalse(self.exists())


if __name__ == "__main__":
    unittest.main()
