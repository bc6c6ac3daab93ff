import DatapathCore
import XCTest

@testable import Agent

final class PrometheusTextTests: XCTestCase {
    func testFamiliesGroupWithOneHelpAndTypeLine() {
        let text = PrometheusText.render([
            MetricSample(name: "a_total", labels: ["x": "1"], value: 3, help: "A things.", type: "counter"),
            MetricSample(name: "b", value: 0.25, help: "B level."),
            MetricSample(
                name: "a_total", labels: ["x": "2"], value: 4, help: "ignored: the first help wins", type: "counter"),
        ])
        XCTAssertEqual(
            text,
            """
            # HELP a_total A things.
            # TYPE a_total counter
            a_total{x="1"} 3
            a_total{x="2"} 4
            # HELP b B level.
            # TYPE b gauge
            b 0.25

            """)
    }

    func testEscapesLabelValuesAndHelp() {
        let text = PrometheusText.render([
            MetricSample(
                name: "m", labels: ["path": #"C:\dir "q""# + "\nnext"], value: 1,
                help: "line one\nback\\slash \"quoted\"")
        ])
        XCTAssertEqual(
            text,
            #"""
            # HELP m line one\nback\\slash "quoted"
            # TYPE m gauge
            m{path="C:\\dir \"q\"\nnext"} 1

            """#)
    }

    func testSanitizesNamesAndSortsLabels() {
        let text = PrometheusText.render([
            MetricSample(
                name: "9bad-name.x", labels: ["z": "1", "a-b": "2", "__reserved": "3"], value: 1, type: "weird")
        ])
        XCTAssertEqual(
            text,
            """
            # TYPE _9bad_name_x untyped
            _9bad_name_x{_reserved="3",a_b="2",z="1"} 1

            """)
    }

    func testDuplicateSeriesAreWrittenOnce() {
        let text = PrometheusText.render([
            MetricSample(name: "g", labels: ["k": "v"], value: 1),
            MetricSample(name: "g", labels: ["k": "v"], value: 2),
        ])
        XCTAssertEqual(text, "# TYPE g gauge\ng{k=\"v\"} 1\n")
    }

    func testValues() {
        XCTAssertEqual(PrometheusText.value(0), "0")
        XCTAssertEqual(PrometheusText.value(12_345_678_901), "12345678901")
        XCTAssertEqual(PrometheusText.value(-3), "-3")
        XCTAssertEqual(PrometheusText.value(0.5), "0.5")
        XCTAssertEqual(PrometheusText.value(1e-05), "1e-05")
        XCTAssertEqual(PrometheusText.value(.infinity), "+Inf")
        XCTAssertEqual(PrometheusText.value(-.infinity), "-Inf")
        XCTAssertEqual(PrometheusText.value(.nan), "NaN")
        XCTAssertEqual(PrometheusText.value(1e300), "1e+300")
    }

    func testHistogramSamplesAreCumulativeWithInfSumAndCount() {
        var histogram = Histogram(bounds: [0.1, 1])
        for value in [0.05, 0.1, 0.5, 3] { histogram.observe(value) }
        let text = PrometheusText.render(histogram.samples(name: "d_seconds", labels: ["route": "/x"], help: "D."))
        XCTAssertEqual(
            text,
            """
            # HELP d_seconds D.
            # TYPE d_seconds histogram
            d_seconds_bucket{route="/x",le="0.1"} 2
            d_seconds_bucket{route="/x",le="1"} 3
            d_seconds_bucket{route="/x",le="+Inf"} 4
            d_seconds_sum{route="/x"} 3.65
            d_seconds_count{route="/x"} 4

            """)
    }

    func testAHistogramFollowedByAnotherFamilyStaysContiguous() {
        var histogram = Histogram(bounds: [1])
        histogram.observe(2)
        let samples =
            histogram.samples(name: "h", labels: ["a": "1"], help: "")
            + [MetricSample(name: "other", value: 1)]
            + histogram.samples(name: "h", labels: ["a": "2"], help: "")
        let lines = PrometheusText.render(samples).split(separator: "\n")
        XCTAssertEqual(lines.filter { $0.hasPrefix("# TYPE h ") }.count, 1)
        let firstOther = lines.firstIndex { $0.hasPrefix("other") }!
        XCTAssertTrue(lines[firstOther...].dropFirst().allSatisfy { !$0.hasPrefix("h_") }, "\(lines)")
        XCTAssertEqual(lines.filter { $0.hasPrefix("h_count") }.count, 2)
    }
}
