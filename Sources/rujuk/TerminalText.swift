/// Text from another agency, made safe to print on a terminal.
///
/// A reason or a note can hold escape sequences (clear the screen, set the window title, move
/// the cursor to overwrite what is shown) or bidirectional overrides that make a line read
/// differently from what it holds. Each such character is shown as U+FFFD instead, so what is
/// printed is text and nothing else; the line breaks of the output are the CLI's own.
enum TerminalText {
    static func safe(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            out.append(isControl(scalar) ? "\u{FFFD}" : scalar)
        }
        return String(out)
    }

    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F: true  // C0 (ESC, CR, LF, BEL…), DEL and C1 (CSI, OSC…)
        case 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: true  // bidirectional controls
        case 0x2028, 0x2029: true  // line and paragraph separators
        default: false
        }
    }
}
