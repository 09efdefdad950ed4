// A deterministic test corpus for the tokenizer comparisons, one JSON string per line:
//   node corpus.mjs [--n 1200] [--seed 17]
// Every kind of text a tokenizer gets wrong first: prose with contractions, accented and
// combining-mark text, many scripts, CJK, emoji (ZWJ sequences, skin tones, flags), runs of
// spaces, tabs and newlines, digits, code, the special-token texts of each family, and edge
// cases (empty, whitespace only, very long words, SentencePiece's own U+2581, "<0x41>").
// Characters where JavaScript's \s and Oniguruma's \s disagree (U+0085, U+FEFF, U+180E) are
// left out: the JS reference would differ from HF there, not seedgrid.
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const N = opt("--n", 1200);
let state = opt("--seed", 17) >>> 0;

// mulberry32
function rand() {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const int = (n) => Math.floor(rand() * n);
const pick = (xs) => xs[int(xs.length)];
const repeat = (s, n) => s.repeat(n);

const words = (
  "the of and to in is you that it he was for on are as with his they at be this have from " +
  "or one had by word but not what all were we when your can said there use an each which she " +
  "do how their if will up other about out many then them these so some her would make like " +
  "him into time has look two more write go see number no way could people my than first water " +
  "been call who oil its now find long down day did get come made may part tokenizer gradient " +
  "steering persona honesty dilemma weights Transformer LoRA ablation harvest MPI HDF5"
).split(" ");
const contractions = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ll", "n't"];
const punct = [".", ",", "!", "?", ";", ":", "...", " -- ", "—", "–", "(", ")", "\"", "'", "«", "»", "¿", "¡", "…"];
const accented = ["café", "naïve", "résumé", "Ångström", "façade", "Straße", "İstanbul", "Øresund", "piñata", "crème brûlée", "Dvořák", "Łódź", "ŒUVRE"];
const combining = ["e\u0301", "a\u0308", "n\u0303", "o\u0302\u0323", "A\u030A", "i\u0307", "Z\u0335", "u\u031B\u0309", "\u0915\u094D\u0937"];
const scripts = [
  "Ελληνικά γράμματα", "Привет, мир", "Здравствуйте", "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया",
  "สวัสดีชาวโลก", "Γειά σου Κόσμε", "ሰላም ልዑል", "Բարեւ աշխարհ", "გამარჯობა", "வணக்கம்", "ಕನ್ನಡ",
  "Tiếng Việt có dấu", "Türkçe ığüşöç", "Ҳаёт", "ꯃꯤꯇꯩ",
];
const cjk = [
  "你好，世界", "我们今天去公园散步。", "中文分词测试", "日本語のテキスト", "ひらがなとカタカナ", "東京都渋谷区",
  "한국어 텍스트", "안녕하세요 여러분", "漢字仮名交じり文", "全角スペース　を含む", "ｶﾀｶﾅ半角", "１２３全角数字",
];
const emoji = [
  "😀", "🎉", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇯🇵", "🇺🇸", "❤️", "🤖", "🧪", "🚀✨", "👩🏾‍💻", "🫠", "☕", "🐍", "⚡️",
];
const specials = [
  "<s>", "</s>", "<unk>", "<pad>", "<bos>", "<eos>", "<|endoftext|>", "<|begin_of_text|>",
  "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|im_start|>",
  "<|im_end|>", "<start_of_turn>", "<end_of_turn>", "<think>", "</think>", "<|fim_prefix|>",
  "[INST]", "[/INST]", "<<SYS>>", "<mask>",
];
const code = [
  "def f(x):\n    return x ** 2\n",
  "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}\n",
  "{\"key\": [1, 2, 3], \"nested\": {\"a\": null}}",
  "#include <vector>\nint main() { std::vector<int> v{1,2,3}; }\n",
  "SELECT id, name FROM users WHERE age >= 21 ORDER BY name;",
  "const x = (a, b) => a?.b ?? `tmpl ${b}`;",
  "if x != None and y == 0:\n        pass\n    else:\n        raise ValueError('bad')",
  "<div class=\"row\"><span>&nbsp;text</span></div>",
  "$ ls -la | grep '^d' && echo done",
  "x_1 = np.zeros((3, 4), dtype=np.float32)  # comment",
  "    \t  indented\tmixed   \t\twhitespace",
];
const spaces = [" ", "  ", "   ", "    ", "        ", "\t", "\t\t", "\n", "\n\n", "\n\n\n", "\r\n", " \n ", "\t \n", "\u00A0", "\u3000", "\u2009", "\u200B"];

function number() {
  switch (int(7)) {
    case 0: return String(int(10));
    case 1: return String(int(100000));
    case 2: return String(int(1e9)) + String(int(1e9));
    case 3: return (rand() * 1000).toFixed(int(5));
    case 4: return `${1900 + int(130)}-${1 + int(12)}-${1 + int(28)}`;
    case 5: return (int(1e7)).toLocaleString("en-US");
    default: return "0x" + int(0xffffff).toString(16);
  }
}

function sentence() {
  const n = 3 + int(12);
  let s = "";
  for (let i = 0; i < n; ++i) {
    let w = pick(words);
    if (rand() < 0.1) w = w[0].toUpperCase() + w.slice(1);
    if (rand() < 0.05) w = w.toUpperCase();
    if (rand() < 0.08) w += pick(contractions);
    s += (i ? " " : "") + w;
    if (rand() < 0.1) s += pick(punct);
  }
  return s + pick([".", "!", "?", "", "\n"]);
}

const fragments = [
  sentence, number,
  () => pick(accented), () => pick(combining) + pick(words), () => pick(scripts), () => pick(cjk),
  () => pick(emoji), () => pick(specials), () => pick(code), () => pick(spaces), () => pick(punct),
  () => pick(contractions),
];

function mixed() {
  const n = 1 + int(8);
  let s = "";
  for (let i = 0; i < n; ++i) {
    s += pick(fragments)();
    if (rand() < 0.5) s += pick(spaces);
  }
  return s;
}

const edge = [
  "", " ", "  ", "\n", "\t", " \t\n\r ", "a", "A", "é", "😀", "\u2581", "\u2581\u2581hello", "▁leading",
  "<0x41>", "<0xFF> literal", "<s><s></s>", "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
  "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
  "<start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n",
  "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nQuestion? [/INST]",
  repeat("a", 300), repeat("ab", 200), repeat("ha", 77) + "!", repeat(" ", 40), repeat("\n", 33),
  repeat("\t", 17), repeat("-", 64), repeat("=", 80), repeat("1234567890", 12),
  "Supercalifragilisticexpialidocious" + repeat("x", 250), repeat("😀", 30), repeat("中", 100),
  "don't can't won't I'm you're we've they'll she'd IT'S", "HELLO WORLD'S", "x'sy 's 'S",
  "  leading spaces", "trailing spaces   ", "tab\tseparated\tvalues", "line1\nline2\r\nline3\rline4",
  "Ｆｕｌｌｗｉｄｔｈ ｌｅｔｔｅｒｓ", "ﬁ ﬂ ﬀ ligatures", "①②③ ⅠⅡⅢ", "x² + y³ = z⁴", "½ ¼ ¾",
  "e\u0301e\u0301e\u0301", "\u0301 starts with a mark", "é vs e\u0301",
];

const out = [];
for (const e of edge) out.push(e);
while (out.length < N) {
  const r = rand();
  if (r < 0.3) out.push(sentence());
  else if (r < 0.85) out.push(mixed());
  else out.push(pick(specials) + mixed() + pick(specials));
}
process.stdout.write(out.map((s) => JSON.stringify(s)).join("\n") + "\n");
