"""Checks of curve_stats (run by `make test` with the system Python; no NeMo needed)."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import curve_stats  # noqa: E402


class CurveStatsTests(unittest.TestCase):
    def test_summary(self):
        s = curve_stats.summarize([1.0, 2.0, 4.0])
        self.assertAlmostEqual(s["mean"], 7 / 3)
        self.assertEqual((s["lo"], s["hi"], s["n"]), (1.0, 4.0, 3))
        self.assertAlmostEqual(s["sd"], ((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) ** 0.5 / 2 ** 0.5)
        self.assertEqual(curve_stats.summarize([5.0])["sd"], 0.0)
        with self.assertRaises(ValueError):
            curve_stats.summarize([])

    def test_compare_uses_only_steps_every_run_has_and_tests_the_mean_against_the_range(self):
        nest = {1: {0: 5.0, 100: 4.0, 200: 3.0}, 2: {0: 5.0, 100: 4.2, 200: 3.4}}
        nemo = {1: {0: 5.0, 100: 3.9, 200: 2.0}, 2: {0: 5.0, 100: 4.3}, 3: {0: 5.0, 100: 4.0, 200: 2.5}}
        rows = curve_stats.compare(nest, nemo)
        self.assertEqual([r["step"] for r in rows], [0, 100], "step 200 is missing from one NeMo seed")
        self.assertTrue(rows[0]["within"], "equal values lie within a zero-width spread")
        self.assertAlmostEqual(rows[1]["nest"]["mean"], 4.1)
        self.assertEqual((rows[1]["nemo"]["lo"], rows[1]["nemo"]["hi"]), (3.9, 4.3))
        self.assertTrue(rows[1]["within"])
        rows = curve_stats.compare({1: {0: 4.5}, 2: {0: 4.6}}, {1: {0: 4.0}, 2: {0: 4.2}})
        self.assertFalse(rows[0]["within"], "a mean above NeMo's largest seed is outside")

    def test_table_and_svg(self):
        nest = {1: {0: 5.0, 100: 4.0}, 2: {0: 5.0, 100: 4.4}}
        nemo = {1: {0: 5.0, 100: 4.5}, 2: {0: 5.0, 100: 4.7}}
        table = curve_stats.markdown_table(curve_stats.compare(nest, nemo), "val_loss")
        self.assertIn("| 100 | 4.2000 (4.0000–4.4000) | 4.6000 (4.5000–4.7000) | no |", table)
        picture = curve_stats.svg([{"title": "val_loss", "systems": [("nest-train", "blue", nest), ("NeMo", "red", nemo)],
                                    "baseline": ("entropy", {0: 4.8, 100: 4.8})}], "test")
        self.assertTrue(picture.startswith("<svg") and picture.rstrip().endswith("</svg>"))
        self.assertEqual(picture.count("<polyline"), 2 * 2 + 2 + 1, "a thin line per seed, a mean per system, the baseline")


if __name__ == "__main__":
    unittest.main()
