package main

import (
	"fmt"
	"html"
	"io"
	"math"
	"strconv"
	"strings"
)

// chart is what render draws.
type chart struct {
	Title  string
	YLabel string
	Style  string // "line" or "bar"
	Width  int    // whole image, pixels
	Height int
	Panels []panel
	Series []string // legend order; also fixes each series' colour
}

// palette is colour-blind-friendly (Okabe–Ito), in the order series get them.
var palette = []string{"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"}

// dashes tell apart series that share a colour when there are more series
// than colours.
var dashes = []string{"", "6,3", "2,3", "8,3,2,3"}

const (
	marginTop    = 56 // chart title + panel titles
	marginBottom = 52 // x tick labels + axis title
	marginLeft   = 64 // y tick labels + axis title
	panelGap     = 28
	legendWidth  = 190
	font         = `font-family="sans-serif"`
)

// render writes c as a standalone SVG document.
func render(w io.Writer, c chart) error {
	var b strings.Builder
	esc := html.EscapeString
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">`+"\n", c.Width, c.Height, c.Width, c.Height)
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>`+"\n", c.Width, c.Height)
	fmt.Fprintf(&b, `<text x="%d" y="22" %s font-size="16" font-weight="bold" text-anchor="middle">%s</text>`+"\n", (c.Width-legendWidth)/2, font, esc(c.Title))

	n := len(c.Panels)
	plotW := (float64(c.Width-legendWidth) - marginLeft*float64(n) - panelGap*float64(n-1) - 10) / float64(n)
	plotH := float64(c.Height - marginTop - marginBottom)
	for i, p := range c.Panels {
		x0 := marginLeft + float64(i)*(plotW+marginLeft+panelGap)
		drawPanel(&b, c, p, x0, marginTop, plotW, plotH)
	}
	drawLegend(&b, c.Series, float64(c.Width-legendWidth+16), marginTop)
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func seriesStyle(i int) (colour, dash string) {
	return palette[i%len(palette)], dashes[(i/len(palette))%len(dashes)]
}

func drawPanel(b *strings.Builder, c chart, p panel, x0, y0, w, h float64) {
	top := 0.0
	for _, pts := range p.Series {
		for _, pt := range pts {
			top = math.Max(top, pt.Max)
		}
	}
	ticks := niceTicks(top)
	// Clients are categories (1, 16, 64 are not evenly spread on any
	// useful scale), so each gets an equal slot.
	f := frame{x0: x0, y0: y0, w: w, h: h, ymax: ticks[len(ticks)-1], slot: w / float64(len(p.Clients)), clients: p.Clients}
	fmt.Fprintf(b, `<g class="panel">`+"\n")
	drawAxes(b, c, p, f, ticks)
	present := 0
	for _, s := range c.Series {
		if len(p.Series[s]) > 0 {
			present++
		}
	}
	bar := 0
	for si, s := range c.Series {
		pts := p.Series[s]
		if len(pts) == 0 {
			continue
		}
		colour, dash := seriesStyle(si)
		fmt.Fprintf(b, `<g class="series" data-series="%s">`+"\n", html.EscapeString(s))
		switch c.Style {
		case "bar":
			drawBars(b, f, s, pts, colour, bar, present)
			bar++
		default:
			drawLine(b, f, s, pts, colour, dash)
		}
		b.WriteString("</g>\n")
	}
	b.WriteString("</g>\n")
}

// frame maps a panel's values to the image: y by value, x by client slot.
type frame struct {
	x0, y0, w, h float64
	ymax, slot   float64
	clients      []int
}

func (f frame) y(v float64) float64 { return f.y0 + f.h - v/f.ymax*f.h }

// xc is the centre of the slot of a client count.
func (f frame) xc(clients int) float64 {
	for i, c := range f.clients {
		if c == clients {
			return f.x0 + f.slot*(float64(i)+0.5)
		}
	}
	return f.x0
}

// drawAxes draws the panel title, the grid with y ticks, the axes and
// their labels.
func drawAxes(b *strings.Builder, c chart, p panel, f frame, ticks []float64) {
	esc := html.EscapeString
	x0, y0, w, h := f.x0, f.y0, f.w, f.h
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" %s font-size="14" text-anchor="middle">%s</text>`+"\n", x0+w/2, y0-12, font, esc(p.Kind))
	for _, t := range ticks {
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#dddddd" stroke-width="1"/>`+"\n", x0, f.y(t), x0+w, f.y(t))
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" %s font-size="11" text-anchor="end">%s</text>`+"\n", x0-6, f.y(t)+4, font, esc(shortNum(t)))
	}
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#000000" stroke-width="1"/>`+"\n", x0, y0, x0, y0+h)
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#000000" stroke-width="1"/>`+"\n", x0, y0+h, x0+w, y0+h)
	for _, cl := range p.Clients {
		x := f.xc(cl)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#000000" stroke-width="1"/>`+"\n", x, y0+h, x, y0+h+5)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" %s font-size="11" text-anchor="middle">%d</text>`+"\n", x, y0+h+18, font, cl)
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" %s font-size="12" text-anchor="middle">clients</text>`+"\n", x0+w/2, y0+h+40, font)
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" %s font-size="12" text-anchor="middle" transform="rotate(-90 %.1f %.1f)">%s</text>`+"\n",
		x0-48, y0+h/2, font, x0-48, y0+h/2, esc(c.YLabel))
}

// drawBars draws series s as the bar-th of present bars in each client
// slot; the whisker spans the min–max of the rounds.
func drawBars(b *strings.Builder, f frame, s string, pts []point, colour string, bar, present int) {
	esc := html.EscapeString
	bw := f.slot * 0.8 / float64(present)
	for _, pt := range pts {
		x := f.xc(pt.Clients) - f.slot*0.4 + float64(bar)*bw
		fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s, %d clients: %s</title></rect>`+"\n",
			x, f.y(pt.Med), bw*0.9, f.y0+f.h-f.y(pt.Med), colour, esc(s), pt.Clients, esc(shortNum(pt.Med)))
		whisker(b, x+bw*0.45, f.y(pt.Min), f.y(pt.Max))
	}
}

// drawLine draws series s as a line through its medians, with whiskers.
func drawLine(b *strings.Builder, f frame, s string, pts []point, colour, dash string) {
	esc := html.EscapeString
	coords := make([]string, len(pts))
	for i, pt := range pts {
		coords[i] = fmt.Sprintf("%.1f,%.1f", f.xc(pt.Clients), f.y(pt.Med))
	}
	dashAttr := ""
	if dash != "" {
		dashAttr = fmt.Sprintf(` stroke-dasharray="%s"`, dash)
	}
	fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(coords, " "), colour, dashAttr)
	for _, pt := range pts {
		whisker(b, f.xc(pt.Clients), f.y(pt.Min), f.y(pt.Max))
		fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"><title>%s, %d clients: %s</title></circle>`+"\n",
			f.xc(pt.Clients), f.y(pt.Med), colour, esc(s), pt.Clients, esc(shortNum(pt.Med)))
	}
}

// whisker draws the min–max range of the rounds behind one median.
func whisker(b *strings.Builder, x, yMin, yMax float64) {
	if math.Abs(yMin-yMax) < 1 {
		return
	}
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#555555" stroke-width="1"/>`+"\n", x, yMin, x, yMax)
}

func drawLegend(b *strings.Builder, series []string, x, y float64) {
	fmt.Fprintf(b, `<g class="legend">`+"\n")
	for i, s := range series {
		colour, dash := seriesStyle(i)
		yy := y + float64(i)*20
		dashAttr := ""
		if dash != "" {
			dashAttr = fmt.Sprintf(` stroke-dasharray="%s"`, dash)
		}
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="3"%s/>`+"\n", x, yy, x+22, yy, colour, dashAttr)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" %s font-size="12">%s</text>`+"\n", x+28, yy+4, font, html.EscapeString(s))
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" %s font-size="10" fill="#555555">dots/bars: median of rounds</text>`+"\n", x, y+float64(len(series))*20+8, font)
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" %s font-size="10" fill="#555555">whiskers: min–max</text>`+"\n", x, y+float64(len(series))*20+22, font)
	b.WriteString("</g>\n")
}

// niceTicks returns 0 and evenly spaced round tick values (steps of 1, 2
// or 5 × 10^k) whose last one is at or above top: 4 to 10 ticks in all.
func niceTicks(top float64) []float64 {
	if !(top > 0) || math.IsInf(top, 0) {
		return []float64{0, 1}
	}
	raw := top / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	n := int(math.Ceil(top/step - 1e-9))
	ticks := make([]float64, n+1)
	for i := range ticks {
		ticks[i] = float64(i) * step
	}
	return ticks
}

// shortNum formats a tick or value compactly: 12345 → "12.3k", 2.5 → "2.5".
func shortNum(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return strconv.FormatFloat(math.Round(v/1e4)/100, 'f', -1, 64) + "M"
	case a >= 1e3:
		return strconv.FormatFloat(math.Round(v/100)/10, 'f', -1, 64) + "k"
	case a >= 100:
		return strconv.FormatFloat(math.Round(v), 'f', -1, 64)
	default:
		return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
	}
}
