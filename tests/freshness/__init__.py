"""Freshness at every tier after every write (issue 14): one test per mechanism, on a real stack
(tests/freshness/conftest.py), plus a fast run of the stale-read sampler (bench/sampler.py).

  1 refused fill leaves the origin uncacheable   test_cluster_freshness::test_refused_fill_is_not_stored_by_the_edge
  2 CDN purge after L2 + broadcast               test_cluster_freshness::test_cdn_purge_is_delivered_only_after_l2_is_invalidated
  3 edge re-fetch from a lagging L1              test_cluster_freshness::test_edge_refetch_from_a_lagging_l1_is_not_kept
  4 read-your-writes across processes            test_cluster_freshness::test_no_worker_answers_the_old_version_once_the_patch_returned
  5 malformed message / stuck subscriber         test_subscriber::test_a_malformed_broadcast_does_not_stop_later_edits,
                                                 test_subscriber::test_a_stuck_subscriber_is_noticed_and_stops_l1_from_lying
  6 sequence going backwards, no reconnect       test_sequence_epoch::test_sequence_going_backwards_does_not_make_l1_skip_invalidations,
                                                 test_sequence_epoch::test_sequence_going_backwards_does_not_let_a_racing_fill_into_l1
  7 waiters past LEASE_WAIT do not all load      test_cluster_freshness::test_waiters_past_lease_wait_do_not_all_run_the_loader
  sampler (readers racing a writer, per tier)    test_cluster_freshness::test_sampler_sees_no_stale_reads_past_the_window
"""
