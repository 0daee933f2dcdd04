# SPDX-License-Identifier: MIT
"""`keel migrate`: the seed agent's flat state directory (layout 1) to Keel's (layout 2)."""

import fcntl
import os
import resource
import shutil
import signal
import stat
import tempfile
import unittest

from keelrun import Keel, KeelTestCase, load_trace, run


def snapshot(root):
    """Every entry under root: (kind, mode, content or link target)."""
    result = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            if stat.S_ISLNK(st.st_mode):
                result[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                result[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                with open(path, "rb") as f:
                    result[rel] = ("file", stat.S_IMODE(st.st_mode), f.read())
    return result


class Migrate(KeelTestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="keel-migrate-")
        self.addCleanup(shutil.rmtree, self.root, True)
        self.state = os.path.join(self.root, "state")
        os.mkdir(self.state, 0o700)
        self.elsewhere = os.path.join(self.root, "athenz-ca.pem")
        self.write(self.elsewhere, b"CA BUNDLE\n", 0o644)

    def write(self, path, data, mode):
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)

    def layout1(self, key_mode=0o600):
        self.write(os.path.join(self.state, "private.pem"), b"KEY\n", key_mode)
        self.write(os.path.join(self.state, "cert.pem"), b"CERT CHAIN\n", 0o644)
        self.write(os.path.join(self.state, "user.wfan.provider_dummy-role.cert.pem"), b"ROLE\n", 0o644)
        os.symlink(self.elsewhere, os.path.join(self.state, "ca.pem"))

    def migrate(self, *args):
        return run("migrate", *args, env={"KEEL_STATE_DIR": self.state})

    def test_layout_1_becomes_layout_2(self):
        self.layout1()
        status, out, err, _ = self.migrate()
        self.assertEqual(status, 0, err)
        self.assertIn("move private.pem to key.pem (mode 0600)", out)
        self.assertEqual(snapshot(self.state), {
            "key.pem": ("file", 0o600, b"KEY\n"),
            "cert.pem": ("file", 0o644, b"CERT CHAIN\n"),
            "ca.pem": ("file", 0o644, b"CA BUNDLE\n"),
            "roles": ("dir", 0o700),
            "roles/user.wfan.provider_dummy-role.cert.pem": ("file", 0o644, b"ROLE\n"),
            "layout": ("file", 0o644, b"2\n"),
            ".lock": ("file", 0o600, b""),  # the writer's lock, held while it migrated
        })

    def test_a_key_readable_by_others_is_made_0600(self):
        self.layout1(key_mode=0o644)
        status, _, err, _ = self.migrate()
        self.assertEqual(status, 0, err)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(self.state, "key.pem")).st_mode), 0o600)

    def test_dry_run_prints_the_plan_and_changes_nothing(self):
        self.layout1()
        before = snapshot(self.state)
        status, out, err, _ = self.migrate("--dry-run")
        self.assertEqual(status, 0, err)
        self.assertIn("Would migrate state directory", out)
        self.assertIn("move user.wfan.provider_dummy-role.cert.pem to roles/user.wfan.provider_dummy-role.cert.pem", out)
        self.assertIn("replace the link ca.pem by a copy of the file it points to", out)
        self.assertIn("record layout 2 in layout", out)
        self.assertEqual(snapshot(self.state), before)

    def test_a_second_run_does_nothing(self):
        self.layout1()
        self.assertEqual(self.migrate()[0], 0)
        after = snapshot(self.state)
        status, out, err, _ = self.migrate()
        self.assertEqual(status, 0, err)
        self.assertIn("is at layout 2 already: nothing to do", out)
        self.assertEqual(snapshot(self.state), after)

    def test_a_migration_cut_short_is_finished_by_the_next_run(self):
        self.layout1()
        # As if killed after its first rename: key moved, the rest not, no layout file.
        os.rename(os.path.join(self.state, "private.pem"), os.path.join(self.state, "key.pem"))
        status, _, err, _ = self.migrate()
        self.assertEqual(status, 0, err)
        self.assertEqual(set(snapshot(self.state)), {"key.pem", "cert.pem", "ca.pem", "roles", "layout", ".lock",
                                                     "roles/user.wfan.provider_dummy-role.cert.pem"})

    def test_an_unknown_file_is_refused_and_nothing_moves(self):
        self.layout1()
        self.write(os.path.join(self.state, "notes.txt"), b"?\n", 0o644)
        before = snapshot(self.state)
        status, _, err, _ = self.migrate()
        self.assertEqual(status, 1, err)
        self.assertIn("Refusing to migrate", err)
        self.assertIn("'notes.txt' is not part of any known layout", err)
        self.assertEqual(snapshot(self.state), before)

    def test_two_keys_are_refused(self):
        self.layout1()
        self.write(os.path.join(self.state, "key.pem"), b"OTHER KEY\n", 0o600)
        status, _, err, _ = self.migrate()
        self.assertEqual(status, 1, err)
        self.assertIn("both private.pem and key.pem exist", err)

    def test_an_unknown_layout_version_is_refused(self):
        self.write(os.path.join(self.state, "layout"), b"7\n", 0o644)
        status, _, err, _ = self.migrate()
        self.assertEqual(status, 1, err)
        self.assertIn("layout '7', which this version does not know", err)

    def test_a_dangling_ca_link_is_removed(self):
        self.layout1()
        os.unlink(self.elsewhere)
        status, out, err, _ = self.migrate()
        self.assertEqual(status, 0, err)
        self.assertIn("remove ca.pem, a link to nothing", out)
        self.assertNotIn("ca.pem", snapshot(self.state))

    def test_a_ca_link_to_a_whole_system_bundle_is_copied(self):
        bundle = b"".join(b"-----BEGIN CERTIFICATE-----\n%06d\n-----END CERTIFICATE-----\n" % i for i in range(6000))
        self.assertGreater(len(bundle), 300_000, "as /etc/ssl/certs/ca-certificates.crt is")
        self.write(self.elsewhere, bundle, 0o644)
        self.layout1()
        status, out, err, _ = self.migrate()
        self.assertEqual(status, 0, err)
        self.assertIn("replace the link ca.pem by a copy of the file it points to", out)
        self.assertEqual(snapshot(self.state)["ca.pem"], ("file", 0o644, bundle))

    def test_a_ca_link_to_a_directory_is_refused_by_the_plan(self):
        self.layout1()
        os.unlink(self.elsewhere)
        os.mkdir(self.elsewhere)
        before = snapshot(self.state)
        for args in (["--dry-run"], []):
            status, _, err, _ = self.migrate(*args)
            self.assertEqual(status, 1, err)
            self.assertIn(f"Refusing to migrate {self.state}: 'ca.pem' links to something other than a file; put a copy "
                          "of the CA bundle in its place and run again", err)
        self.assertEqual(snapshot(self.state), before)

    def test_hundreds_of_role_certificates_are_moved(self):
        self.layout1()
        for i in range(300):
            self.write(os.path.join(self.state, f"sports_role{i}.cert.pem"), b"ROLE %d\n" % i, 0o644)
        status, out, err, _ = self.migrate()
        self.assertEqual(status, 0, err)
        after = snapshot(self.state)
        for i in range(300):
            self.assertEqual(after[f"roles/sports_role{i}.cert.pem"], ("file", 0o644, b"ROLE %d\n" % i))
        self.assertEqual(after["layout"], ("file", 0o644, b"2\n"))

    def test_a_short_write_of_the_layout_file_says_why_it_failed(self):
        # Nothing to copy (no ca.pem link): the layout file is the one file written. A file size
        # limit of one byte cuts its write(2) short (a short write sets no errno), and the write of
        # the rest fails with EFBIG (keel ignores SIGXFSZ, which would kill it).
        self.write(os.path.join(self.state, "private.pem"), b"KEY\n", 0o600)
        self.write(os.path.join(self.state, "cert.pem"), b"CERT CHAIN\n", 0o644)
        hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
        status, _, err, _ = run("migrate", env={"KEEL_STATE_DIR": self.state},
                                preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (1, hard)))
        self.assertEqual(status, 1, err)
        self.assertIn("Failed to record layout 2 in layout in " + self.state + ": File too large", err)
        self.assertNotIn("layout", os.listdir(self.state), "no layout file, not even a cut one")

    def test_no_state_directory_is_nothing_to_do(self):
        shutil.rmtree(self.state)
        status, out, err, _ = self.migrate()
        self.assertEqual(status, 0, err)
        self.assertIn("does not exist: nothing to migrate", out)

    def test_it_runs_through_the_state_machine_in_ready_after(self):
        self.layout1()
        trace = os.path.join(self.root, "trace.json")
        status, _, err, _ = run("--trace", trace, "migrate", env={"KEEL_STATE_DIR": self.state})
        self.assertEqual(status, 0, err)
        observers = {e["name"]: e["args"] for e in load_trace(trace) if e.get("cat") == "observer"}
        self.assertEqual(observers["migrate.command"]["event"], "command")
        self.assertEqual((observers["migrate.run"]["event"], observers["migrate.run"]["phase"]), ("ready", "after"))
        self.assertEqual(observers["migrate.run"]["result"], "ok")
        names = [e["name"] for e in load_trace(trace) if e.get("cat") == "event"]
        self.assertIn("stop", names, "the app stops with the command's status")

    def test_serve_and_init_refuse_a_layout_1_directory_and_change_nothing(self):
        # Issuing into it would replace the seed's cert.pem beside its private.pem; init issues and
        # records layout 2 as serve does.
        for command in ("serve", "init"):
            with self.subTest(command):
                self.layout1()
                before = snapshot(self.state)
                status, _, err, _ = run(command, env={"KEEL_STATE_DIR": self.state})
                self.assertEqual(status, 1, err)
                self.assertIn(f"State directory '{self.state}' is in the seed agent's layout 1 (it holds private.pem): "
                              "run `keel migrate` first; nothing was changed", err)
                self.assertEqual(snapshot(self.state), before)
                self.assertEqual(self.migrate()[0], 0, "and migrate still can")
                shutil.rmtree(self.state)
                os.mkdir(self.state, 0o700)

    def test_serve_refuses_role_certificates_left_outside_roles(self):
        self.write(os.path.join(self.state, "sports_reader.cert.pem"), b"ROLE\n", 0o644)
        before = snapshot(self.state)
        status, _, err, _ = run("serve", env={"KEEL_STATE_DIR": self.state})
        self.assertEqual(status, 1, err)
        self.assertIn("(it holds sports_reader.cert.pem): run `keel migrate` first", err)
        self.assertEqual(snapshot(self.state), before)

    def test_token_refuses_a_layout_1_directory_too(self):
        self.layout1()
        before = snapshot(self.state)
        status, out, err, _ = run("token", "--domain", "sports", "--role", "reader",
                                  env={"KEEL_STATE_DIR": self.state})
        self.assertEqual(status, 1, err)
        self.assertEqual(out, "")
        self.assertIn("run `keel migrate` first", err)
        self.assertEqual(snapshot(self.state), before)

    def test_serve_refuses_a_layout_this_version_does_not_know(self):
        self.write(os.path.join(self.state, "layout"), b"3\n", 0o644)
        status, _, err, _ = run("serve", env={"KEEL_STATE_DIR": self.state})
        self.assertEqual(status, 1, err)
        self.assertIn(f"State directory '{self.state}': layout says layout '3', which this version does not know", err)
        self.assertEqual(sorted(os.listdir(self.state)), ["layout"])

    def serve_once(self):
        """serve on self.state until READY=1, then SIGTERM: it exits 0."""
        k = Keel("serve", env={"KEEL_STATE_DIR": self.state})
        try:
            k.ready()
            k.kill(signal.SIGTERM)
            status, _, err = k.wait()
        finally:
            k.close()
        self.assertEqual(status, 0, err)

    def test_a_directory_serve_made_needs_no_migration(self):
        # An empty record, as a crash may leave it (serve does not sync it), reads as none.
        self.write(os.path.join(self.state, "layout"), b"", 0o644)
        self.serve_once()
        with open(os.path.join(self.state, "layout"), "rb") as f:
            self.assertEqual(f.read(), b"2\n")
        before = snapshot(self.state)
        status, out, err, _ = self.migrate()
        self.assertEqual(status, 0, err)
        self.assertIn("is at layout 2 already: nothing to do", out)
        self.assertEqual(snapshot(self.state), before)

    def test_a_directory_serve_made_whose_record_a_crash_emptied_is_finished(self):
        self.serve_once()
        self.assertTrue(os.path.exists(os.path.join(self.state, "pair.pem")))
        # What other configurations leave there too: certificate.issuers' record, ACME's accounts.
        self.write(os.path.join(self.state, "issuer"), b"RECORD\n", 0o600)
        os.mkdir(os.path.join(self.state, "acme"), 0o700)
        self.write(os.path.join(self.state, "acme", "account.key.pem"), b"KEY\n", 0o600)
        self.write(os.path.join(self.state, "layout"), b"", 0o644)
        before = snapshot(self.state)
        status, _, err, _ = self.migrate()
        self.assertEqual(status, 0, err)
        after = snapshot(self.state)
        self.assertEqual(after.pop("layout")[2], b"2\n")
        before.pop("layout")
        self.assertEqual(after, before, "nothing but the record changes")

    def test_one_writer_at_a_time_even_without_a_pid_file(self):
        serving = Keel("serve", env={"KEEL_STATE_DIR": self.state})
        try:
            serving.ready()
            before = snapshot(self.state)
            status, _, err, _ = run("serve", "--set", "plugins.disabled=[token, metrics, healthcheck]",
                                    env={"KEEL_STATE_DIR": self.state, "KEEL_FAULT": "sigterm@in:health.ready"}, timeout=10)
            self.assertEqual(status, 1, err)
            self.assertIn(f"State directory '{self.state}' is in use by another keel process", err)
            self.assertEqual(snapshot(self.state), before, "the refused one wrote nothing")
            serving.kill(signal.SIGTERM)
            status, _, err = serving.wait()
            self.assertEqual(status, 0, err)
        finally:
            serving.close()
        status, _, err, _ = run("serve", "--set", "plugins.disabled=[token, metrics, healthcheck]",
                                env={"KEEL_STATE_DIR": self.state, "KEEL_FAULT": "sigterm@in:health.ready"})
        self.assertEqual(status, 0, "the lock went with the process that held it:\n" + err)

    def test_a_migration_waits_for_no_one_and_writes_nothing_while_another_writer_holds_the_lock(self):
        self.layout1()
        with open(os.path.join(self.state, ".lock"), "w") as held:
            fcntl.flock(held, fcntl.LOCK_EX)  # as a serving or migrating keel holds it
            before = snapshot(self.state)
            status, _, err, _ = self.migrate()
            self.assertEqual(status, 1, err)
            self.assertIn(f"Refusing to migrate: State directory '{self.state}' is in use", err)
            self.assertEqual(snapshot(self.state), before)
            status, out, err, _ = self.migrate("--dry-run")
            self.assertEqual(status, 0, "a dry run only reads:\n" + err)
        self.assertEqual(self.migrate()[0], 0, "the lock let go")

    def test_serve_without_the_certificate_service_refuses_layout_1_too(self):
        # The check belongs to the state directory, not to a plugin: a served life writes there
        # (the shutdown record) whatever runs.
        self.layout1()
        before = snapshot(self.state)
        status, _, err, _ = run("serve", "--set", "plugins.disabled=[certificate, token, metrics, healthcheck]",
                                env={"KEEL_STATE_DIR": self.state, "KEEL_FAULT": "sigterm@in:health.ready"}, timeout=10)
        self.assertEqual(status, 1, err)
        self.assertIn("run `keel migrate` first", err)
        self.assertEqual(snapshot(self.state), before)

    def test_bad_argument_is_a_usage_error(self):
        status, _, err, _ = self.migrate("--force")
        self.assertEqual(status, 64, err)
        self.assertIn("migrate: unknown argument '--force' (expected --dry-run)", err)


if __name__ == "__main__":
    unittest.main()
