"""The PWM lease journal's connection follows its file when a state-archive import replaces it."""

import sqlite3

from reactorkit.core.hardware.leases import PwmLeases, connect, holder_token


def test_the_journal_reads_and_writes_the_file_put_in_place_of_the_one_it_opened(tmp_path):
    # a state-archive import puts another folder in place of $DOT_PIOREACTOR; the task worker's watchdog, which
    # keeps its connection, must then see the leases jobs take in the new file (else a channel left on by a job
    # that died after the import stays on)
    root = tmp_path / "dot"
    journal = PwmLeases(None, root / "storage" / "cache.sqlite")
    journal.take(1, job_name="before the import", duty_cycle=50.0, t_on=0.0)
    assert [lease.job_name for lease in journal.all()] == ["before the import"]

    staged = tmp_path / "staged"
    (staged / "storage").mkdir(parents=True)
    conn = connect(staged / "storage" / "cache.sqlite")
    conn.execute("INSERT INTO pwm_leases (channel, holder, job_name, duty_cycle, t_on, heartbeat)"
                 " VALUES (2, ?, 'after the import', 30.0, 1.0, 1.0)", (holder_token(),))
    conn.close()
    root.rename(tmp_path / "replaced")
    staged.rename(root)

    assert [lease.job_name for lease in journal.all()] == ["after the import"]
    journal.take(3, job_name="taken after it", duty_cycle=10.0, t_on=2.0)
    with sqlite3.connect(root / "storage" / "cache.sqlite") as db:
        assert [r[0] for r in db.execute("SELECT job_name FROM pwm_leases ORDER BY lease_id")] == [
            "after the import", "taken after it"]
