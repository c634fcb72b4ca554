"""Runs pg2kinesis 0.7.0 unchanged except for one wal2json option: the
benchmark's backlog ends with a logical decoding message (its end marker),
which wal2json 2.x emits as a change without a "table" key and pg2kinesis
then crashes on (KeyError: 'table'). filter-msg-prefixes drops it."""
import sys

from pg2kinesis import slot
from pg2kinesis.__main__ import main
from pg2kinesis.log import logger


def process_replication_stream(self, consume):
    logger.info('Starting the consumption of slot "%s"!' % self.slot_name)
    options = {"include-xids": 1, "filter-msg-prefixes": "kinesync_bench,kinesync_heartbeat"}
    self._repl_cursor.start_replication(self.slot_name, options=options)
    self._repl_cursor.consume_stream(consume)


slot.SlotReader.process_replication_stream = process_replication_stream
sys.exit(main())
