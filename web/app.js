// SPDX-License-Identifier: MIT
/*
 * ttyhub's console page (plain modern JS, no build step; xterm.js and its fit addon are the
 * pinned npm files served next to this one).
 *
 * The model:
 * - A link is https://HOST/#t=TOKEN&c=CONSOLE.  The token is single use: it is POSTed once to
 *   /api/session, which sets an HttpOnly cookie, and then removed from the address bar (the
 *   fragment becomes #c=CONSOLE, so that a reload reopens the console without the token).
 *   Without a console the page lists the session's consoles (GET /api/consoles).
 * - One WebSocket per console at /ws, subprotocol ttyhub.v1, binary messages only: one type
 *   byte, then the payload (integers big-endian, JSON as UTF-8).  HELLO goes first; OUTPUT
 *   frames carry their [start, end) offsets in the console's stream.
 * - Position: after xterm.js has rendered an OUTPUT frame (the write callback), its end offset
 *   is ACKed (the server's flow control) and stored with the stream's epoch in sessionStorage
 *   under the console's name.  A reload or a reconnect sends HELLO with resume {epoch, offset}:
 *   the broker continues exactly there, so the transcript has no gap and no repeat.
 * - A dropped connection is retried with back-off, as is a DETACHED "shutdown" (ttyhub-webd or
 *   ttyhubd stopping); any other detach, a policy close (1008: the session expired or the
 *   origin is refused) or an ERROR before the attach stops the retries.
 *
 * The Content-Security-Policy allows no inline style.  xterm.js writes its dynamic CSS
 * through <style> elements and setAttribute("style"), which that policy blocks, so
 * cspStyleShim() below routes both through the CSSOM (constructed style sheets and
 * element.style), which the policy does not govern.  The CSS is xterm's own: nothing loaded
 * from elsewhere, nothing the guest controls beyond the colours of its output.
 */
"use strict";

(function () {
	const T_HELLO = 0x01, T_INPUT = 0x02, T_RESIZE = 0x03, T_CONTROL = 0x04, T_ACK = 0x05;
	const T_OUTPUT = 0x81, T_STATUS = 0x82, T_NOTICE = 0x83, T_DETACHED = 0x84,
		T_ERROR = 0x85;
	const BACKOFF_MS = [250, 500, 1000, 2000, 4000, 8000];
	const POS_PREFIX = "ttyhub.pos.";
	const ACCESS_PREFIX = "ttyhub.access.";

	const enc = new TextEncoder();
	const dec = new TextDecoder();
	const $ = (id) => document.getElementById(id);

	function cspStyleShim() {
		// A <style> element, even an empty one, is inline style to the policy.  xterm.js makes
		// them only to set their text and remove them later, so it gets a hidden inert
		// element whose text goes to a constructed style sheet instead.
		const createElement = Document.prototype.createElement;
		Document.prototype.createElement = function (tag, options) {
			if (String(tag).toLowerCase() !== "style")
				return createElement.call(this, tag, options);
			const el = createElement.call(this, "ttyhub-style");
			el.hidden = true;
			const sheet = new CSSStyleSheet();
			let css = "";
			let adopted = false;
			const set = (text) => {
				css = String(text);
				sheet.replaceSync(css);
				if (!adopted) {
					adopted = true;
					document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
				}
			};
			for (const prop of ["textContent", "innerText", "innerHTML"]) {
				Object.defineProperty(el, prop, {
					get() { return css; },
					set,
				});
			}
			el.remove = function () {
				document.adoptedStyleSheets =
					document.adoptedStyleSheets.filter((s) => s !== sheet);
				adopted = false;
				Element.prototype.remove.call(this);
			};
			return el;
		};
		// Inline style attributes are blocked too; the same declarations through the CSSOM are
		// not.
		const setAttribute = Element.prototype.setAttribute;
		Element.prototype.setAttribute = function (name, value) {
			if (String(name).toLowerCase() === "style" && this.style) {
				this.style.cssText = String(value);
				return;
			}
			return setAttribute.call(this, name, value);
		};
	}

	// --- small helpers ------------------------------------------------------------------

	function showMessage(text, bad) {
		const m = $("message");
		m.textContent = text;
		m.className = bad ? "bad" : "";
		m.hidden = !text;
	}

	function setStatus(text, bad) {
		const s = $("status");
		s.textContent = text;
		s.title = text;
		s.className = bad ? "bad" : "";
	}

	function frame(type, payload) {
		const out = new Uint8Array(1 + payload.length);
		out[0] = type;
		out.set(payload, 1);
		return out;
	}

	function jsonFrame(type, obj) {
		return frame(type, enc.encode(JSON.stringify(obj)));
	}

	function parseFragment() {
		const p = new URLSearchParams(location.hash.replace(/^#/, ""));
		return { token: p.get("t"), console: p.get("c") };
	}

	function loadPos(name) {
		try {
			const v = JSON.parse(sessionStorage.getItem(POS_PREFIX + name));
			if (v && typeof v.epoch === "string" && Number.isSafeInteger(v.offset))
				return v;
		} catch (e) {
			// A damaged entry is as good as none: attach without resume.
		}
		return null;
	}

	function savePos(name, epoch, offset) {
		sessionStorage.setItem(POS_PREFIX + name, JSON.stringify({ epoch, offset }));
	}

	// --- the session ---------------------------------------------------------------------

	async function redeem(token) {
		const r = await fetch("/api/session", {
			method: "POST",
			credentials: "same-origin",
			cache: "no-store",
			headers: { "Content-Type": "application/json" },
			body: JSON.stringify({ token }),
		});
		let body = {};
		try {
			body = await r.json();
		} catch (e) {
			body = {};
		}
		if (!r.ok)
			throw new Error(body.error || body.message || "this link is not valid");
		return body;
	}

	async function listConsoles() {
		const r = await fetch("/api/consoles", { credentials: "same-origin", cache: "no-store" });
		let body = {};
		try {
			body = await r.json();
		} catch (e) {
			body = {};
		}
		if (!r.ok)
			throw new Error(body.error || body.message ||
				"no session: open a new link (ssh ... web-link VM)");
		return body.consoles || [];
	}

	function consoleAccess(c) {
		if (c.access)
			return c.access;
		return c.rw === false ? "ro" : "rw";
	}

	async function showList() {
		$("terminal").hidden = true;
		$("buttons").hidden = true;
		setStatus("consoles");
		let consoles;
		try {
			consoles = await listConsoles();
		} catch (e) {
			setStatus("no session", true);
			showMessage(e.message, true);
			return;
		}
		const ul = $("consoles");
		ul.replaceChildren();
		for (const c of consoles) {
			const name = c.name || c.console;
			const li = document.createElement("li");
			const a = document.createElement("a");
			a.href = "#c=" + encodeURIComponent(name);
			a.textContent = name;
			a.dataset.console = name;
			const meta = document.createElement("span");
			meta.className = "meta";
			const access = consoleAccess(c);
			sessionStorage.setItem(ACCESS_PREFIX + name, access);
			meta.textContent = [access === "ro" ? "read-only" : "read-write",
				c.state || "", c.writer ? "writer: " + c.writer : ""]
				.filter(Boolean).join(" · ");
			li.append(a, meta);
			ul.append(li);
		}
		if (!consoles.length)
			showMessage("This session may use no console.", false);
		else
			showMessage("", false);
		$("list").hidden = false;
	}

	// --- one console ---------------------------------------------------------------------

	class ConsoleView {
		constructor(name) {
			this.name = name;
			this.status = {};
			this.ws = null;
			this.attached = false;
			this.stopped = false;
			this.retry = 0;
			this.timer = null;
			this.epoch = null;
			const pos = loadPos(name);
			this.pos = pos; // {epoch, offset} rendered so far, or null
			this.term = new Terminal({
				cursorBlink: true,
				scrollback: 5000,
				convertEol: false,
				allowProposedApi: false,
			});
			this.fit = new FitAddon.FitAddon();
			this.term.loadAddon(this.fit);
			const el = $("terminal");
			el.replaceChildren();
			el.hidden = false;
			this.term.open(el);
			this.term.attachCustomKeyEventHandler((ev) => this.key(ev));
			this.term.onData((d) => this.send(frame(T_INPUT, enc.encode(d))));
			this.term.onBinary((d) => {
				const b = new Uint8Array(d.length);
				for (let i = 0; i < d.length; i++)
					b[i] = d.charCodeAt(i) & 0xff;
				this.send(frame(T_INPUT, b));
			});
			this.term.onResize(({ cols, rows }) => this.sendResize(cols, rows));
			this.onWindowResize = () => {
				if (this.fitPending)
					return;
				this.fitPending = true;
				requestAnimationFrame(() => {
					this.fitPending = false;
					this.fit.fit();
				});
			};
			window.addEventListener("resize", this.onWindowResize);
			this.fit.fit();
			this.term.focus();
		}

		key(ev) {
			// Ctrl+Shift+C copies the selection, Ctrl+Shift+V pastes (the browser's paste event,
			// which xterm.js turns into input, bracketed if the guest asked for it).
			if (ev.type === "keydown" && ev.ctrlKey && ev.shiftKey && !ev.altKey) {
				if (ev.code === "KeyC") {
					const sel = this.term.getSelection();
					if (sel && navigator.clipboard)
						navigator.clipboard.writeText(sel).catch(() => {});
					ev.preventDefault();
					return false;
				}
				if (ev.code === "KeyV")
					return false;
			}
			return true;
		}

		notice(text) {
			// On a line of its own, as ttyhub-sshd writes its notices.
			const b = this.term.buffer.active;
			this.term.write((b.cursorX ? "\r\n" : "") + "\x1b[1m[ttyhub] " +
				text.replace(/[\x00-\x1f\x7f]/g, " ") + "\x1b[0m\r\n");
		}

		connect() {
			clearTimeout(this.timer);
			this.timer = null;
			const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host +
				"/ws";
			const ws = new WebSocket(url, "ttyhub.v1");
			ws.binaryType = "arraybuffer";
			this.ws = ws;
			this.attached = false;
			setStatus(this.name + ": connecting");
			ws.onopen = () => {
				const hello = {
					console: this.name,
					mode: sessionStorage.getItem(ACCESS_PREFIX + this.name) === "ro" ? "ro" : "rw",
					cols: this.term.cols,
					rows: this.term.rows,
				};
				if (this.pos)
					hello.resume = { epoch: this.pos.epoch, offset: this.pos.offset };
				ws.send(jsonFrame(T_HELLO, hello));
			};
			ws.onmessage = (ev) => {
				if (ws === this.ws && ev.data instanceof ArrayBuffer)
					this.receive(new Uint8Array(ev.data));
			};
			ws.onclose = (ev) => {
				if (ws !== this.ws)
					return;
				this.ws = null;
				this.attached = false;
				if (ev.code === 1008) {
					this.stop("closed by the server: " + (ev.reason || "not allowed") +
						" (open a new link)");
					return;
				}
				if (this.stopped)
					return;
				const wait = BACKOFF_MS[Math.min(this.retry, BACKOFF_MS.length - 1)];
				this.retry++;
				setStatus(this.name + ": disconnected, retrying in " + wait / 1000 + " s", true);
				this.timer = setTimeout(() => this.connect(), wait);
			};
			ws.onerror = () => {
				// onclose follows and decides; the browser logs the cause.
			};
		}

		stop(text) {
			this.stopped = true;
			clearTimeout(this.timer);
			if (this.ws) {
				const ws = this.ws;
				this.ws = null;
				ws.close(1000);
			}
			$("buttons").hidden = false;
			for (const b of $("buttons").querySelectorAll("button"))
				b.hidden = b.id !== "b-list";
			setStatus(this.name + ": " + text, true);
		}

		send(bytes) {
			if (this.ws && this.ws.readyState === WebSocket.OPEN && this.attached)
				this.ws.send(bytes);
		}

		sendResize(cols, rows) {
			const b = new Uint8Array(5);
			const v = new DataView(b.buffer);
			v.setUint8(0, T_RESIZE);
			v.setUint16(1, cols);
			v.setUint16(3, rows);
			this.send(b);
		}

		control(obj) {
			this.send(jsonFrame(T_CONTROL, obj));
		}

		ack(end) {
			const b = new Uint8Array(9);
			const v = new DataView(b.buffer);
			v.setUint8(0, T_ACK);
			v.setBigUint64(1, BigInt(end));
			if (this.ws && this.ws.readyState === WebSocket.OPEN)
				this.ws.send(b);
		}

		receive(msg) {
			if (msg.length < 1)
				return;
			const type = msg[0];
			const body = msg.subarray(1);
			if (type === T_OUTPUT) {
				if (body.length < 16)
					return;
				const v = new DataView(body.buffer, body.byteOffset, 16);
				const end = Number(v.getBigUint64(8));
				const ws = this.ws;
				// ACK and remember the offset only once xterm.js has rendered the bytes:
				// what the page shows and what it resumes from are the same.
				this.term.write(body.slice(16), () => {
					if (this.epoch !== null &&
					    (!this.pos || this.pos.epoch !== this.epoch || end > this.pos.offset)) {
						this.pos = { epoch: this.epoch, offset: end };
						savePos(this.name, this.epoch, end);
					}
					if (ws === this.ws)
						this.ack(end);
				});
				return;
			}
			let obj = {};
			try {
				obj = JSON.parse(dec.decode(body));
			} catch (e) {
				return;
			}
			switch (type) {
			case T_STATUS:
				this.onStatus(obj);
				break;
			case T_NOTICE:
				if (obj.text)
					this.notice(obj.text);
				break;
			case T_DETACHED:
				this.notice(obj.text || "detached");
				// "shutdown": ttyhub-webd or ttyhubd is going away, not us: the close that
				// follows is retried and resumes at our offset.
				if (obj.reason !== "shutdown")
					this.stop("detached" + (obj.reason ? " (" + obj.reason + ")" : ""));
				break;
			case T_ERROR:
				this.notice((obj.message || "error") + (obj.code ? " (" + obj.code + ")" : ""));
				if (!this.attached)
					this.stop(obj.message || "error");
				break;
			default:
				break;
			}
		}

		onStatus(obj) {
			Object.assign(this.status, obj);
			const s = this.status;
			if (s.epoch && s.epoch !== this.epoch) {
				this.epoch = s.epoch;
				if (this.pos && this.pos.epoch !== s.epoch && typeof s.offset === "number") {
					// A new stream (the console restarted): count from where it is now.
					this.pos = null;
				}
			}
			if (!this.attached) {
				this.attached = true;
				this.retry = 0;
				// The size HELLO carried may be stale after a reconnect: say it again.
				this.sendResize(this.term.cols, this.term.rows);
			}
			if (s.access)
				sessionStorage.setItem(ACCESS_PREFIX + this.name, s.access);
			this.render();
		}

		render() {
			const s = this.status;
			const who = s.writer ? s.writer : "nobody";
			// Ours first: a long writer label is what gets cut off (the tooltip has it all).
			const parts = [
				s.console || this.name,
				"you: " + (s.role || "?") + " (" + (s.access === "ro" ? "read-only" : "read-write") + ")",
				"VM " + (s.vm_state || s.state || "?"),
				(s.clients ?? "?") + " attached",
				"writer: " + who,
			];
			setStatus(parts.join(" · "), false);
			$("buttons").hidden = false;
			for (const b of $("buttons").querySelectorAll("button"))
				b.hidden = false;
			const rw = s.access !== "ro";
			$("b-take").hidden = !rw || s.role === "writer";
			$("b-release").hidden = s.role !== "writer";
			$("b-break").hidden = !(s.break === true && s.role === "writer");
		}

		take() {
			const s = this.status;
			this.control({ op: s.writer && s.role !== "writer" ? "force" : "take" });
		}

		dispose() {
			this.stopped = true;
			clearTimeout(this.timer);
			if (this.ws) {
				const ws = this.ws;
				this.ws = null;
				ws.close(1000);
			}
			window.removeEventListener("resize", this.onWindowResize);
			this.term.dispose();
		}
	}

	let view = null;

	function openConsole(name) {
		$("list").hidden = true;
		showMessage("", false);
		if (view)
			view.dispose();
		view = new ConsoleView(name);
		view.connect();
	}

	function wireButtons() {
		$("b-take").addEventListener("click", () => view && view.take());
		$("b-release").addEventListener("click", () => view && view.control({ op: "release" }));
		$("b-break").addEventListener("click", () => view && view.control({ op: "break" }));
		$("b-replay").addEventListener("click",
			() => view && view.control({ op: "replay", lines: 50 }));
		$("b-detach").addEventListener("click", () => view && view.control({ op: "detach" }));
		$("b-list").addEventListener("click", () => {
			location.hash = "";
		});
		for (const b of $("buttons").querySelectorAll("button")) {
			// Give the keyboard back to the terminal after a click.
			b.addEventListener("mouseup", () => view && !view.stopped && view.term.focus());
		}
	}

	function route() {
		const { console: name } = parseFragment();
		if (name) {
			if (!view || view.name !== name || view.stopped)
				openConsole(name);
			return;
		}
		if (view) {
			view.dispose();
			view = null;
		}
		$("terminal").hidden = true;
		showList();
	}

	// A read-only window on the page for the browser test (never a way in): the terminal's
	// text as xterm.js holds it, and the status fields.
	window.ttyhubTest = Object.freeze({
		text() {
			if (!view)
				return "";
			const b = view.term.buffer.active;
			const lines = [];
			for (let i = 0; i < b.length; i++)
				lines.push(b.getLine(i).translateToString(true));
			return lines.join("\n");
		},
		// What the stream wrote so far: the lines up to the cursor, wrapped lines joined,
		// the cursor's line cut at the cursor (a test splices two page loads with it).
		transcript() {
			if (!view)
				return "";
			const b = view.term.buffer.active;
			const last = b.baseY + b.cursorY;
			let out = "";
			for (let i = 0; i <= last && i < b.length; i++) {
				const line = b.getLine(i);
				if (i > 0 && !line.isWrapped)
					out += "\n";
				out += i === last ? line.translateToString(false, 0, b.cursorX)
					: line.translateToString(true);
			}
			return out;
		},
		status() {
			return view ? JSON.parse(JSON.stringify(view.status)) : null;
		},
		attached() {
			return !!(view && view.attached);
		},
	});

	async function main() {
		cspStyleShim();
		wireButtons();
		const { token, console: name } = parseFragment();
		if (token) {
			// Off the address bar (and the history) at once, whatever happens next.
			history.replaceState(null, "",
				location.pathname + (name ? "#c=" + encodeURIComponent(name) : ""));
			try {
				const s = await redeem(token);
				// Under the name the link used, which HELLO sends (the broker may answer with
				// the console's full name).
				for (const n of [name, s.console])
					if (n && s.access)
						sessionStorage.setItem(ACCESS_PREFIX + n, s.access);
				if (!name && s.console)
					history.replaceState(null, "", location.pathname + "#c=" +
						encodeURIComponent(s.console));
			} catch (e) {
				setStatus("link refused", true);
				showMessage(e.message + ". Ask for a new link: ssh ... web-link VM, or " +
					"ttyhub web-link VM.", true);
				return;
			}
		}
		window.addEventListener("hashchange", route);
		route();
	}

	main();
})();
