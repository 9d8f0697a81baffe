package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"

	"github.com/runbook/runbook/engine/history"
)

//go:embed report.html
var htmlSource string

var htmlTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"when": func(t time.Time) string { return t.Local().Format(timeFormat) },
	"join": strings.Join,
	// wordClass is a status word as a class name: "rolled back" is s-rolled-back.
	"wordClass": func(w string) string { return strings.ReplaceAll(w, " ", "-") },
	"sub":       func(a float64, b int) float64 { return a - float64(b) },
	"diffLines": func(s string) []diffLine {
		var out []diffLine
		for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
			c := "ctx"
			switch {
			case strings.HasPrefix(l, "+++") || strings.HasPrefix(l, "---") || strings.HasPrefix(l, "@@"):
				c = "hdr"
			case strings.HasPrefix(l, "+"):
				c = "add"
			case strings.HasPrefix(l, "-"):
				c = "del"
			}
			out = append(out, diffLine{Class: c, Text: l})
		}
		return out
	},
	"pcie":  pcieText,
	"sriov": sriovText,
	"speed": speedText,
	"history": func(hh []HostHistory, host string) string {
		for _, h := range hh {
			if h.Host == host {
				marks := make([]string, len(h.Statuses))
				for i, st := range h.Statuses {
					marks[i] = statusMark(st)
				}
				return strings.Join(marks, "")
			}
		}
		return ""
	},
}).Parse(htmlSource))

type diffLine struct{ Class, Text string }

// pcieText is a NIC's PCIe link as the table shows it: "x16 Gen3 (8 GT/s), 126 Gbps", with
// what the card could do when the link trained below it, and whether the card's ports can
// carry more than the link.
func pcieText(p *NICPCIe) string {
	if p == nil {
		return "–"
	}
	s := fmt.Sprintf("x%d", p.Width)
	if p.Generation != nil {
		s += fmt.Sprintf(" Gen%d", *p.Generation)
	}
	s += fmt.Sprintf(" (%g GT/s)", p.SpeedGTs)
	if p.BandwidthGbps != nil {
		s += fmt.Sprintf(", %g Gbps", *p.BandwidthGbps)
	}
	if p.Degraded {
		if p.MaxWidth != nil {
			s += fmt.Sprintf(", degraded (card x%d)", *p.MaxWidth)
		} else {
			s += ", degraded"
		}
	}
	if p.Oversubscribed {
		s += ", oversubscribed"
	}
	return s
}

// sriovText says what SR-IOV a NIC has: "4 of 8 VFs", "VF of 0000:5e:00.0", "no".
func sriovText(n NIC) string {
	switch {
	case n.SRIOVPF != "":
		return "VF of " + n.SRIOVPF
	case n.SRIOVCapable && n.SRIOVTotal != nil:
		num := 0
		if n.SRIOVNum != nil {
			num = *n.SRIOVNum
		}
		return fmt.Sprintf("%d of %d VFs", num, *n.SRIOVTotal)
	case n.SRIOVCapable:
		return "capable"
	}
	return "no"
}

// speedText is a link speed in Mbit/s as people say it: "100G", "2.5G", "100M".
func speedText(mbps int) string {
	if mbps >= 1000 {
		return fmt.Sprintf("%gG", float64(mbps)/1000)
	}
	return fmt.Sprintf("%dM", mbps)
}

// NICPCIe is a NIC's PCIe link.
type NICPCIe = history.NICPCIe

// htmlData is the report with what the page needs besides: the trend chart's geometry and
// the hosts to show in detail.
type htmlData struct {
	*Report
	Trend    trend
	Problems []Host
	// Warned and WithNICs say whether any host has warnings, a NIC table.
	Warned, WithNICs bool
}

// trend is an SVG bar chart: one stacked bar per run, hosts by state.
type trend struct {
	Width, Height, Left, LabelY float64
	Bars                        []trendBar
	Ticks                       []trendTick
}

type trendBar struct {
	Label, Title string
	LabelX       float64
	Segs         []trendSeg
}

type trendSeg struct {
	Class      string
	X, Y, W, H float64
}

type trendTick struct {
	Y     float64
	Label string
}

func round1(f float64) float64 { return float64(int(f*10+0.5)) / 10 }

func buildTrend(runs []RunPoint) trend {
	t := trend{Width: 960, Height: 200, Left: 40}
	top, bottom := 10.0, t.Height-24
	t.LabelY = t.Height - 8
	maxHosts := 1
	for _, p := range runs {
		maxHosts = max(maxHosts, p.Hosts)
	}
	// Ticks at 0, half and the maximum.
	for _, v := range []int{0, (maxHosts + 1) / 2, maxHosts} {
		y := bottom - (bottom-top)*float64(v)/float64(maxHosts)
		t.Ticks = append(t.Ticks, trendTick{Y: round1(y), Label: fmt.Sprint(v)})
	}
	n := max(len(runs), 1)
	slot := (t.Width - t.Left - 8) / float64(n)
	w := min(48, slot*0.7)
	for i, p := range runs {
		x := t.Left + 4 + slot*float64(i) + (slot-w)/2
		b := trendBar{Label: p.short(), LabelX: round1(x + w/2),
			Title: fmt.Sprintf("%s, %s (%s): %d hosts: %d in sync, %d drifting, %d unknown, %d failed, %d unreachable",
				p.title(), p.When.Local().Format(timeFormat), p.Mode, p.Hosts, p.InSync, p.Drifting, p.Unknown, p.Failed, p.Unreachable)}
		y := bottom
		for _, s := range []struct {
			class string
			n     int
		}{{"ok", p.InSync}, {"drift", p.Drifting}, {"unknown", p.Unknown}, {"failed", p.Failed}, {"unreachable", p.Unreachable}} {
			if s.n == 0 {
				continue
			}
			h := (bottom - top) * float64(s.n) / float64(maxHosts)
			y -= h
			b.Segs = append(b.Segs, trendSeg{Class: s.class, X: round1(x), Y: round1(y), W: round1(w), H: round1(h)})
		}
		t.Bars = append(t.Bars, b)
	}
	return t
}

// HTML writes the report as one self-contained page: inline CSS, SVG and a few lines of
// script to filter hosts by state; it loads nothing from anywhere.
func (r *Report) HTML(w io.Writer) error {
	// html/template escapes markup, not the controls and bidi overrides that would hide or
	// reorder text on the page.
	r = r.forPeople()
	d := htmlData{Report: r, Trend: buildTrend(r.Runs)}
	for _, h := range r.Hosts {
		if len(h.Drift) > 0 || len(h.Failed) > 0 || len(h.RolledBack) > 0 {
			d.Problems = append(d.Problems, h)
		}
		d.Warned = d.Warned || len(h.Warnings) > 0
		d.WithNICs = d.WithNICs || len(h.NICs) > 0
	}
	return htmlTemplate.Execute(w, d)
}
