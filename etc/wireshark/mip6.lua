-- aaa-mip6: Wireshark dissectors for RFC 6618 (docs/operations.md, "Reading traffic
-- in Wireshark"; formats in docs/protocol.md).
--
--   mip6tls  the MN-HA packets on UDP port 7872 (preference mip6tls.port): PType, SPI,
--            Sequence Number. PType 0 carries a plain IP packet, handed to Wireshark's
--            IPv4/IPv6 dissector. PType 1 and 8 are laid out as ESP (RFC 6618 §6; the
--            ESP SPI is the whole first word, PType and SPI): they go to Wireshark's own
--            ESP dissector, which verifies the ICV and decrypts with the records of an
--            SA key log (mip6-mn --sa-keylog FILE, Wireshark's esp_sa table) and hands
--            the Destination Options / Routing header and the Mobility Header on to the
--            ipv6 and mip6 dissectors, so a BU or BA shows as one.
--   mip6hac  the RFC 6618 container inside the MN-HAC TLS on TCP port 7443 (preference
--            mip6hac.port): Ver, Identifier, Length and each TV-header as a field
--            (mip6hac.mn_id, mip6hac.status_code, ...), keys masked unless the
--            preference mip6hac.show_keys is on; the eap-payload goes to the eap
--            dissector. Decrypt the TLS with the key log of mip6-mn --tls-keylog FILE
--            (tls.keylog_file).
--
-- Lua in Wireshark 4.0 has no cipher or MAC: decryption and ICV checks are Wireshark's
-- ESP code (libgcrypt), which is why the SA key log is written in its esp_sa format.
-- The one algorithm that code lacks, AES-XCBC-MAC-96 (the ICV of NULL_SHA256 and
-- AES_128_CBC_SHA256), is checked here, in Lua, with the keys of the same file
-- (fields mip6tls.icv_good, mip6tls.icv_bad; preference mip6tls.sa_keys).
--
-- tshark -X lua_script:etc/wireshark/mip6.lua -o esp.enable_encryption_decode:TRUE \
--        -o esp.enable_authentication_check:TRUE -o tls.keylog_file:tls.keys -r lab.pcap

local MIP6TLS_PORT = 7872
local MIP6HAC_PORT = 7443
local SPI_BITS = 28

------------------------------------------------------------------------------ mip6tls

-- AES-XCBC-MAC-96 (RFC 3566) is the ICV of the *_SHA256 suites. Wireshark 4.0's ESP
-- dissector does not have it and its Lua has no cipher, so AES-128 encryption
-- (FIPS-197; XCBC never decrypts) and XCBC are written out here in Lua 5.2. A block is
-- four 32-bit words, most significant octet first. bit32 only does the XORs: octets()
-- takes a word apart with % and / (VM arithmetic), one call per word instead of two
-- bit32 calls per octet, which matters at 160 table look-ups a block.

local bxor = bit32.bxor

-- The four octets of a 32-bit word, most significant first.
local function octets(word)
    local low = word % 65536
    local high = (word - low) / 65536
    return (high - high % 256) / 256, high % 256, (low - low % 256) / 256, low % 256
end

-- The four words of the 16 octets of ``s`` from position ``i``.
local function words(s, i)
    local a, b, c, d, e, f, g, h, j, k, l, m, n, o, p, q = s:byte(i, i + 15)
    return ((a * 256 + b) * 256 + c) * 256 + d, ((e * 256 + f) * 256 + g) * 256 + h,
           ((j * 256 + k) * 256 + l) * 256 + m, ((n * 256 + o) * 256 + p) * 256 + q
end

-- The S-box and the four round tables (SubBytes, ShiftRows and MixColumns of one
-- octet as a column word), built from GF(2^8) arithmetic rather than 1 KiB of literals.
local SBOX, TE0, TE1, TE2, TE3 = {}, {}, {}, {}, {}
do
    local function double(b) -- times x modulo x^8 + x^4 + x^3 + x + 1
        b = b * 2
        return b >= 256 and bxor(b, 0x11B) or b
    end
    local exp, log, x = {}, {}, 1
    for i = 0, 254 do -- powers of the generator 3
        exp[i], log[x] = x, i
        x = bxor(x, double(x))
    end
    for b = 0, 255 do
        local inverse = b == 0 and 0 or exp[(255 - log[b]) % 255]
        local s, rotated = inverse, inverse
        for _ = 1, 4 do -- the affine map: XOR of the inverse rotated by 0..4 bits, ^ 0x63
            rotated = rotated * 2 % 256 + (rotated >= 128 and 1 or 0)
            s = bxor(s, rotated)
        end
        s = bxor(s, 0x63)
        local s2 = double(s)
        local s3 = bxor(s2, s)
        SBOX[b] = s
        TE0[b] = ((s2 * 256 + s) * 256 + s) * 256 + s3
        TE1[b] = ((s3 * 256 + s2) * 256 + s) * 256 + s
        TE2[b] = ((s * 256 + s3) * 256 + s2) * 256 + s
        TE3[b] = ((s * 256 + s) * 256 + s3) * 256 + s2
    end
end

-- The 44 round-key words of a key given as four words (FIPS-197 §5.2).
local function aes_key_schedule(k0, k1, k2, k3)
    local w = {k0, k1, k2, k3}
    local rcon = 1
    for i = 5, 44 do
        local t = w[i - 1]
        if i % 4 == 1 then -- RotWord, SubWord, Rcon
            local a, b, c, d = octets(t)
            t = bxor(((SBOX[b] * 256 + SBOX[c]) * 256 + SBOX[d]) * 256 + SBOX[a],
                     rcon * 16777216)
            rcon = rcon * 2 >= 256 and bxor(rcon * 2, 0x11B) or rcon * 2
        end
        w[i] = bxor(w[i - 4], t)
    end
    return w
end

-- One block encrypted under a key schedule: four words in, four words out.
local function aes_encrypt(rk, s0, s1, s2, s3)
    s0, s1, s2, s3 = bxor(s0, rk[1]), bxor(s1, rk[2]), bxor(s2, rk[3]), bxor(s3, rk[4])
    for k = 5, 37, 4 do -- rounds 1 to 9
        local a0, a1, a2, a3 = octets(s0)
        local b0, b1, b2, b3 = octets(s1)
        local c0, c1, c2, c3 = octets(s2)
        local d0, d1, d2, d3 = octets(s3)
        s0 = bxor(TE0[a0], TE1[b1], TE2[c2], TE3[d3], rk[k])
        s1 = bxor(TE0[b0], TE1[c1], TE2[d2], TE3[a3], rk[k + 1])
        s2 = bxor(TE0[c0], TE1[d1], TE2[a2], TE3[b3], rk[k + 2])
        s3 = bxor(TE0[d0], TE1[a1], TE2[b2], TE3[c3], rk[k + 3])
    end
    local a0, a1, a2, a3 = octets(s0) -- round 10: no MixColumns
    local b0, b1, b2, b3 = octets(s1)
    local c0, c1, c2, c3 = octets(s2)
    local d0, d1, d2, d3 = octets(s3)
    return bxor(((SBOX[a0] * 256 + SBOX[b1]) * 256 + SBOX[c2]) * 256 + SBOX[d3], rk[41]),
           bxor(((SBOX[b0] * 256 + SBOX[c1]) * 256 + SBOX[d2]) * 256 + SBOX[a3], rk[42]),
           bxor(((SBOX[c0] * 256 + SBOX[d1]) * 256 + SBOX[a2]) * 256 + SBOX[b3], rk[43]),
           bxor(((SBOX[d0] * 256 + SBOX[a1]) * 256 + SBOX[b2]) * 256 + SBOX[c3], rk[44])
end

-- K1's key schedule and the words of K2 and K3 (RFC 3566 §4), derived once per key.
local function xcbc_keys(key)
    local rk = aes_key_schedule(words(key, 1))
    local function derived(n) -- AES-K(0xnn repeated 16 times)
        local c = n * 0x01010101
        return {aes_encrypt(rk, c, c, c, c)}
    end
    local k2, k3 = derived(2), derived(3)
    return {k1 = aes_key_schedule(unpack(derived(1))), k2 = k2, k3 = k3}
end

-- AES-XCBC-MAC-96 of the string ``message``: the first 96 bits of the tag, three words.
local function xcbc_mac_96(keys, message)
    local k1, size = keys.k1, #message
    -- the last block: complete (XORed with K2) or padded with 0x80 0x00... (K3)
    local last, pad = size - 15, keys.k2
    if size == 0 or size % 16 ~= 0 then
        last, pad = size - size % 16 + 1, keys.k3
    end
    local e0, e1, e2, e3 = 0, 0, 0, 0
    for i = 1, last - 1, 16 do
        local m0, m1, m2, m3 = words(message, i)
        e0, e1, e2, e3 = aes_encrypt(k1, bxor(e0, m0), bxor(e1, m1), bxor(e2, m2), bxor(e3, m3))
    end
    local tail = message:sub(last)
    if pad == keys.k3 then tail = tail .. "\128" .. string.rep("\0", 15 - #tail) end
    local m0, m1, m2, m3 = words(tail, 1)
    e0, e1, e2 = aes_encrypt(k1, bxor(e0, m0, pad[1]), bxor(e1, m1, pad[2]),
                             bxor(e2, m2, pad[3]), bxor(e3, m3, pad[4]))
    return e0, e1, e2
end

-- Outside Wireshark (lua5.2 etc/wireshark/mip6.lua, as the tests load it) the file is
-- only the cipher and the MAC: return them before anything needs Wireshark's API.
if not Proto then
    return {aes_key_schedule = aes_key_schedule, aes_encrypt = aes_encrypt, words = words,
            xcbc_keys = xcbc_keys, xcbc_mac_96 = xcbc_mac_96}
end

local mip6tls = Proto("mip6tls", "RFC 6618 MN-HA packet")

local ptype_names = {[0] = "Plain IP packet", [1] = "Encrypted IP packet",
                     [8] = "Mobility Header"}

local tls_fields = {
    ptype = ProtoField.uint8("mip6tls.ptype", "PType", base.DEC, ptype_names, 0xF0),
    spi = ProtoField.uint32("mip6tls.spi", "SPI", base.DEC, nil, 0x0FFFFFFF),
    seq = ProtoField.uint32("mip6tls.seq", "Sequence Number", base.DEC),
    icv = ProtoField.bytes("mip6tls.icv", "ICV (AES-XCBC-MAC-96)"),
    icv_good = ProtoField.bool("mip6tls.icv_good", "Good"),
    icv_bad = ProtoField.bool("mip6tls.icv_bad", "Bad"),
}
mip6tls.fields = {tls_fields.ptype, tls_fields.spi, tls_fields.seq, tls_fields.icv,
                  tls_fields.icv_good, tls_fields.icv_bad}

local tls_experts = {
    short = ProtoExpert.new("mip6tls.short", "Shorter than the 8-octet header",
                            expert.group.MALFORMED, expert.severity.ERROR),
    ptype = ProtoExpert.new("mip6tls.unknown_ptype", "Unknown PType",
                            expert.group.MALFORMED, expert.severity.WARN),
    spi0 = ProtoExpert.new("mip6tls.spi_zero", "SPI 0 goes with PType 0 only",
                           expert.group.MALFORMED, expert.severity.WARN),
    icv_bad = ProtoExpert.new("mip6tls.icv_bad.expert", "ICV bad (AES-XCBC-MAC-96)",
                              expert.group.CHECKSUM, expert.severity.ERROR),
}
mip6tls.experts = {tls_experts.short, tls_experts.ptype, tls_experts.spi0, tls_experts.icv_bad}

mip6tls.prefs.port = Pref.uint("UDP port", MIP6TLS_PORT, "The HA's UDP port (IANA mipv6tls)")
mip6tls.prefs.sa_keys = Pref.string(
    "SA key file", "", "The SA key log (mip6-mn --sa-keylog; Wireshark's esp_sa format) "
    .. "whose AES-XCBC-MAC-96 keys check the ICV of the *_SHA256 suites. Empty: the "
    .. "profile's ESP SA table (the esp_sa file), which the ESP dissector reads too.")

local ICV_LENGTH = 12

-- Read from the key file once per pass over a capture (init runs before each pass,
-- also after a preference changes): its XCBC records by first word (PType and SPI).
-- Each frame's verdict is kept, so the GUI's redissections do not redo the MAC.
local xcbc_records, verdicts = nil, {}
local derived = {} -- key -> K1, K2, K3: the same key stays in many records and passes

function mip6tls.init()
    xcbc_records, verdicts = nil, {}
end

-- An esp_sa record is eight quoted fields: family, source, destination, SPI,
-- encryption and its key, authentication and its key. Wireshark has no XCBC, so the
-- key log names it "ANY 96 bit authentication [no checking]" and still writes the
-- key: such a record with a 16-octet key is an AES-XCBC-MAC-96 one (keylog.py).
local function read_xcbc_records()
    local records, path = {}, mip6tls.prefs.sa_keys
    local file = io.open(path ~= "" and path or Dir.personal_config_path("esp_sa"), "r")
    if not file then
        if path ~= "" then
            report_failure("mip6tls: cannot read " .. path
                           .. ", the SA key file the preference mip6tls.sa_keys names")
        end
        return records
    end
    for line in file:lines() do
        local field = {}
        for value in line:gmatch('"([^"]*)"') do field[#field + 1] = value end
        local word = field[4] and tonumber(field[4])
        local key = field[8] and field[8]:match("^0[xX](" .. ("%x"):rep(32) .. ")$")
        if word and key and field[7]:find("^ANY 96 bit") then
            records[word] = records[word] or {}
            table.insert(records[word], {
                family = field[1], source = field[2], destination = field[3],
                key = key:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)})
        end
    end
    file:close()
    return records
end

-- K1, K2, K3 for the record matching the packet's first word and addresses ("*" is
-- any address; both directions of an SA share the word, the addresses tell them apart).
local function xcbc_keys_for(word, pinfo)
    xcbc_records = xcbc_records or read_xcbc_records()
    local source, destination = tostring(pinfo.src), tostring(pinfo.dst)
    local family = source:find(":", 1, true) and "IPv6" or "IPv4"
    for _, record in ipairs(xcbc_records[word] or {}) do
        if record.family == family
                and (record.source == "*" or record.source == source)
                and (record.destination == "*" or record.destination == destination) then
            derived[record.key] = derived[record.key] or xcbc_keys(record.key)
            return derived[record.key]
        end
    end
end

-- {good, expected ICV in hex} for a PType 1/8 packet under an XCBC SA, else nil (also
-- when the capture cut the packet short: the MAC needs all of it).
local function check_icv(tvb, pinfo, word)
    local verdict = verdicts[pinfo.number]
    if verdict == nil then
        verdict = false
        local whole = tvb:len() == tvb:reported_len() and tvb:len() >= 8 + ICV_LENGTH
        local keys = whole and xcbc_keys_for(word, pinfo)
        if keys then
            local signed = tvb:len() - ICV_LENGTH -- PType up to Next Header
            local expected = string.format("%08x%08x%08x", xcbc_mac_96(keys, tvb:raw(0, signed)))
            verdict = {good = expected == tostring(tvb(signed):bytes()):lower(),
                       expected = expected}
        end
        verdicts[pinfo.number] = verdict
    end
    return verdict or nil
end

-- The ICV with its verdict, as the ESP dissector shows the ICVs it checks itself.
local function add_icv(item, tvb, verdict)
    local range = tvb(tvb:len() - ICV_LENGTH)
    local icv = item:add(tls_fields.icv, range)
    icv:append_text(verdict.good and " [correct]"
                    or " [incorrect, should be " .. verdict.expected .. "]")
    icv:add(tls_fields.icv_good, range, verdict.good):set_generated()
    icv:add(tls_fields.icv_bad, range, not verdict.good):set_generated()
    if not verdict.good then icv:add_proto_expert_info(tls_experts.icv_bad) end
end

local esp = Dissector.get("esp")
local ipv4 = Dissector.get("ip")
local ipv6 = Dissector.get("ipv6")
local data = Dissector.get("data")

function mip6tls.dissector(tvb, pinfo, tree)
    local item = tree:add(mip6tls, tvb(0, math.min(tvb:len(), 8)))
    pinfo.cols.protocol = "MIP6TLS"
    if tvb:len() < 8 then
        item:add_proto_expert_info(tls_experts.short)
        return
    end
    local word = tvb(0, 4):uint()
    local ptype = bit32.rshift(word, SPI_BITS)
    local spi = bit32.band(word, 0x0FFFFFFF)
    item:add(tls_fields.ptype, tvb(0, 1))
    item:add(tls_fields.spi, tvb(0, 4))
    item:add(tls_fields.seq, tvb(4, 4))
    item:append_text(string.format(", PType %d, SPI %d, Seq %d", ptype, spi, tvb(4, 4):uint()))
    -- The inner dissectors set the Info column (the BU, BA or ICMP message); the
    -- RFC 6618 header goes in front of it.
    local info = string.format("PType %d SPI %d Seq %d: ", ptype, spi, tvb(4, 4):uint())
    if ptype == 0 then
        if spi ~= 0 then item:add_proto_expert_info(tls_experts.spi0) end
        local inner = tvb(8):tvb()
        if inner:len() > 0 and bit32.rshift(inner(0, 1):uint(), 4) == 6 then
            ipv6:call(inner, pinfo, tree)
        elseif inner:len() > 0 then
            ipv4:call(inner, pinfo, tree)
        end
        pinfo.cols.info:prepend(info)
    elseif ptype_names[ptype] then
        if spi == 0 then item:add_proto_expert_info(tls_experts.spi0) end
        local verdict = check_icv(tvb, pinfo, word)
        if verdict then add_icv(item, tvb, verdict) end
        esp:call(tvb, pinfo, tree) -- still decrypts: only the ICV check is ours
        pinfo.cols.info:prepend(info)
    else
        item:add_proto_expert_info(tls_experts.ptype)
        data:call(tvb(8):tvb(), pinfo, tree)
    end
end

------------------------------------------------------------------------------ mip6hac

local mip6hac = Proto("mip6hac", "RFC 6618 MN-HAC container")

-- Every TV-header of docs/protocol.md ("Content encoding"); field name = header name
-- with '-' as '_'.
local NUMBERS = {["status-code"] = true, ["mip6-spi"] = true, ["mip6-sas"] = true,
                 ["mip6-port"] = true}
local KEYS = {["mip6-mn-to-ha-ikey"] = true, ["mip6-ha-to-mn-ikey"] = true,
              ["mip6-mn-to-ha-ekey"] = true, ["mip6-ha-to-mn-ekey"] = true}
local HEADERS = {"mn-id", "auth-method", "eap-payload", "status-code", "auth", "retry-after",
                 "mn-rand", "hac-rand", "mip6-spi", "mip6-mn-to-ha-ikey",
                 "mip6-ha-to-mn-ikey", "mip6-mn-to-ha-ekey", "mip6-ha-to-mn-ekey",
                 "mip6-sa-validity-end", "mip6-sas", "mip6-ciphersuite", "mip6-suitelist",
                 "mip6-haa-ip6", "mip6-haa-ip4", "mip6-port", "mip6-ip6-hoa", "mip6-ip4-hoa",
                 "mip6-ip6-hnp", "mip6-ip4-hnp", "dns-ip6", "dns-ip4"}
local STATUS = {[100] = "Continue", [200] = "OK", [400] = "Bad Request",
                [401] = "Unauthorized", [500] = "Internal Server Error",
                [501] = "Not Implemented", [503] = "Service Unavailable",
                [504] = "Gateway Timeout"}

local hac_fields = {
    version = ProtoField.uint8("mip6hac.version", "Ver", base.DEC, nil, 0xE0),
    reserved = ProtoField.uint8("mip6hac.reserved", "Reserved", base.HEX, nil, 0x1F),
    identifier = ProtoField.uint8("mip6hac.identifier", "Identifier", base.DEC),
    length = ProtoField.uint16("mip6hac.length", "Length", base.DEC),
    header = ProtoField.string("mip6hac.header", "TV-header"),
}
local header_fields = {}
for _, name in ipairs(HEADERS) do
    local abbrev = "mip6hac." .. name:gsub("-", "_")
    if name == "status-code" then
        header_fields[name] = ProtoField.uint32(abbrev, name, base.DEC, STATUS)
    elseif NUMBERS[name] then
        header_fields[name] = ProtoField.uint32(abbrev, name, base.DEC)
    else
        header_fields[name] = ProtoField.string(abbrev, name)
    end
end
local all_fields = {hac_fields.version, hac_fields.reserved, hac_fields.identifier,
                    hac_fields.length, hac_fields.header}
for _, name in ipairs(HEADERS) do all_fields[#all_fields + 1] = header_fields[name] end
mip6hac.fields = all_fields

local hac_experts = {
    framing = ProtoExpert.new("mip6hac.bad_header", "Ver/Rsrvd not 0, Identifier 0 or Length 0",
                              expert.group.MALFORMED, expert.severity.ERROR),
    line = ProtoExpert.new("mip6hac.bad_line", "Not a TV-header line (name:value CRLF)",
                           expert.group.MALFORMED, expert.severity.WARN),
    unknown = ProtoExpert.new("mip6hac.unknown_header", "Unknown TV-header",
                              expert.group.UNDECODED, expert.severity.NOTE),
}
mip6hac.experts = {hac_experts.framing, hac_experts.line, hac_experts.unknown}

mip6hac.prefs.port = Pref.uint("TCP port", MIP6HAC_PORT, "The HAC's TLS port")
mip6hac.prefs.show_keys = Pref.bool("Show SA keys", false,
                                    "Show the four mip6-*-key values instead of masking them")

local eap = Dissector.get("eap")

local function add_header(tree, tvb, pinfo, start, line)
    local colon = line:find(":", 1, true)
    local range = tvb(start, #line)
    if not colon then
        tree:add(hac_fields.header, range, line):add_proto_expert_info(hac_experts.line)
        return nil
    end
    local name = line:sub(1, colon - 1):lower()
    local value = line:sub(colon + 1):gsub("^[ \t]+", "")
    local field = header_fields[name]
    if not field then
        tree:add(hac_fields.header, range, line):add_proto_expert_info(hac_experts.unknown)
        return name
    end
    if KEYS[name] and not mip6hac.prefs.show_keys then
        tree:add(field, range, string.format("(%d octets, masked)", math.floor(#value / 2)))
    elseif NUMBERS[name] then
        local number = value:match("^%d+$") and tonumber(value)
        if number and number <= 0xFFFFFFFF then
            tree:add(field, range, number)
        else
            tree:add(hac_fields.header, range, line):add_proto_expert_info(hac_experts.line)
            return nil
        end
    else
        local item = tree:add(field, range, value)
        if name == "eap-payload" and value:match("^%x+$") and #value % 2 == 0 then
            local packet = ByteArray.new(value):tvb("EAP packet")
            eap:call(packet, pinfo, item)
        end
    end
    return name, value
end

-- One container at ``offset``: its length, or nil when more octets are needed.
local function dissect_container(tvb, pinfo, tree, offset)
    local available = tvb:len() - offset
    if available < 4 then return nil end
    local length = tvb(offset + 2, 2):uint()
    if available < 4 + length then return nil end
    local item = tree:add(mip6hac, tvb(offset, 4 + length))
    local first = tvb(offset, 1):uint()
    local identifier = tvb(offset + 1, 1):uint()
    item:add(hac_fields.version, tvb(offset, 1))
    item:add(hac_fields.reserved, tvb(offset, 1))
    item:add(hac_fields.identifier, tvb(offset + 1, 1))
    item:add(hac_fields.length, tvb(offset + 2, 2))
    if first ~= 0 or identifier == 0 or length == 0 then
        item:add_proto_expert_info(hac_experts.framing)
    end
    local content = tvb(offset + 4, length):string()
    local position, status = 1, nil
    local kind = pinfo.src_port == mip6hac.prefs.port and "response" or "request"
    while position <= #content do
        local stop = content:find("\r\n", position, true)
        if not stop then
            item:add(hac_fields.header, tvb(offset + 4 + position - 1, #content - position + 1),
                     content:sub(position)):add_proto_expert_info(hac_experts.line)
            break
        end
        if stop == position then break end -- end-of-message
        local name, value = add_header(item, tvb, pinfo, offset + 4 + position - 1,
                                       content:sub(position, stop - 1))
        if name == "status-code" then status = value end
        position = stop + 2
    end
    local summary = string.format("%s id %d", kind, identifier)
    if status then summary = summary .. " status " .. status end
    item:append_text(", " .. summary)
    return 4 + length, summary
end

function mip6hac.dissector(tvb, pinfo, tree)
    local offset, summaries = 0, {}
    while offset < tvb:len() do
        local used, summary = dissect_container(tvb, pinfo, tree, offset)
        if not used then
            -- TLS reassembles the records for us: ask for the rest of this container.
            -- (Return the whole length: 0 would say "not mine" and void the request.)
            pinfo.desegment_offset = offset
            pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT
            offset = tvb:len()
            break
        end
        summaries[#summaries + 1] = summary
        offset = offset + used
    end
    if #summaries > 0 then
        pinfo.cols.protocol = "MIP6HAC"
        pinfo.cols.info = "RFC 6618 " .. table.concat(summaries, "; ")
    end
    return offset
end

------------------------------------------------------------------------------ ports

local registered = {}

local function register_ports()
    local udp, tcp, tls = DissectorTable.get("udp.port"), DissectorTable.get("tcp.port"),
                          DissectorTable.get("tls.port")
    if registered.udp then udp:remove(registered.udp, mip6tls) end
    if registered.tcp then
        tcp:remove(registered.tcp, Dissector.get("tls"))
        tls:remove(registered.tcp, mip6hac)
    end
    registered.udp, registered.tcp = mip6tls.prefs.port, mip6hac.prefs.port
    udp:add(registered.udp, mip6tls)
    tcp:add(registered.tcp, Dissector.get("tls"))
    tls:add(registered.tcp, mip6hac)
end

-- "Decode As" for other ports (and mip6hac on TCP without TLS, as in the tests).
DissectorTable.get("udp.port"):add_for_decode_as(mip6tls)
DissectorTable.get("tcp.port"):add_for_decode_as(mip6hac)

mip6tls.prefs_changed = register_ports
mip6hac.prefs_changed = register_ports
register_ports()

------------------------------------------------------------------------------ mip6lke

-- The Local Key Exchange (docs/lke.md): the KE Request, KE Ack and Finished Mobility
-- Headers and the LKE mobility options (also inside the BU and BA to a previous AR), the
-- LKE Capability and DAD Authentication ND options. A postdissector: Wireshark's own
-- mip6 and icmpv6 dissectors show the headers, this adds what they call unknown. The
-- code points are preferences; the defaults are the profile's, the draft's are MH types
-- 8/9/10, mobility options 3/4/6 and ND options 6/7/8.

local mip6lke = Proto("mip6lke", "Local Key Exchange (draft-liu-mobileip-lke-01)")

local lke_fields = {
    message = ProtoField.string("mip6lke.message", "Message"),
    seq = ProtoField.uint16("mip6lke.seq", "Sequence Number", base.DEC),
    status = ProtoField.uint8("mip6lke.status", "Status", base.DEC),
    lifetime = ProtoField.uint16("mip6lke.lifetime", "Lifetime (4 s units)", base.DEC),
    key_exchange_data = ProtoField.bytes("mip6lke.key_exchange_data", "Key Exchange Data"),
    requested_lifetime = ProtoField.uint16("mip6lke.requested_lifetime",
                                           "Requested Lifetime (4 s units)", base.DEC),
    care_of = ProtoField.ipv6("mip6lke.care_of", "Care-of Address"),
    ar_address = ProtoField.ipv6("mip6lke.ar_address", "AR Address"),
    finished_nonce = ProtoField.uint32("mip6lke.finished_nonce", "Finished Request nonce",
                                       base.HEX),
    nonce = ProtoField.uint32("mip6lke.nonce", "Nonce", base.HEX),
    mac = ProtoField.bytes("mip6lke.mac", "HMAC-SHA1 / Authenticator"),
    max_lifetime = ProtoField.uint16("mip6lke.max_lifetime", "Maximum Lifetime (s)", base.DEC),
    public_key = ProtoField.bytes("mip6lke.public_key", "Public Key (SubjectPublicKeyInfo)"),
    dad = ProtoField.string("mip6lke.dad", "DAD Authentication"),
}
mip6lke.fields = {lke_fields.message, lke_fields.seq, lke_fields.status, lke_fields.lifetime,
                  lke_fields.key_exchange_data, lke_fields.requested_lifetime,
                  lke_fields.care_of, lke_fields.ar_address, lke_fields.finished_nonce,
                  lke_fields.nonce, lke_fields.mac, lke_fields.max_lifetime,
                  lke_fields.public_key, lke_fields.dad}

local lke_prefs = {
    {"ke_request", 253, "MH type of the Key Exchange Request"},
    {"ke_ack", 254, "MH type of the Key Exchange Acknowledgement"},
    {"finished", 252, "MH type of the Finished message"},
    {"requested_lifetime", 250, "Mobility option: Requested Lifetime"},
    {"ar_address", 251, "Mobility option: AR Address"},
    {"finished_request", 252, "Mobility option: Finished Request"},
    {"care_of_address", 253, "Mobility option: Care-of Address"},
    {"capability", 253, "ND option: LKE Capability"},
    {"dad_request", 254, "ND option: DAD Authentication Request"},
    {"dad_reply", 254, "ND option: DAD Authentication Reply"},
}
for _, pref in ipairs(lke_prefs) do
    mip6lke.prefs[pref[1]] = Pref.uint(pref[3], pref[2], pref[3])
end

local MH_BINDING_UPDATE, MH_BINDING_ACK, MH_AUTH_DATA = 5, 6, 5
local mh_field = Field.new("mipv6")
local icmpv6_field = Field.new("icmpv6")

-- The mobility options from ``offset`` to the end of the header ``mh``.
local function lke_mobility_options(mh, offset, item)
    local p = mip6lke.prefs
    while offset + 2 <= mh:len() do
        local kind = mh(offset, 1):uint()
        if kind == 0 then
            offset = offset + 1
        else
            local length = mh(offset + 1, 1):uint()
            if offset + 2 + length > mh:len() then return end
            local value = mh(offset + 2, length)
            if kind == p.care_of_address and length == 16 then
                item:add(lke_fields.care_of, value)
            elseif kind == p.ar_address and length == 16 then
                item:add(lke_fields.ar_address, value)
            elseif kind == p.requested_lifetime and length == 2 then
                item:add(lke_fields.requested_lifetime, value)
            elseif kind == p.finished_request and length == 6 then
                if bit32.band(value(0, 1):uint(), 0x80) ~= 0 then
                    item:add(lke_fields.finished_nonce, value(2, 4))
                end
            elseif kind == MH_AUTH_DATA then
                item:add(lke_fields.mac, value)
            end
            offset = offset + 2 + length
        end
    end
end

-- The Key Exchange Data ends where the options start: the last 24 octets of a request
-- built by this project (Requested Lifetime, PadN, Care-of Address).
local KE_REQUEST_OPTIONS = 24

local function lke_mobility(mh, tree)
    local p = mip6lke.prefs
    if mh:len() < 8 then return nil end
    local kind = mh(2, 1):uint()
    local item
    if kind == p.ke_request and mh:len() >= 8 + KE_REQUEST_OPTIONS + 8 then
        item = tree:add(mip6lke, mh)
        item:add(lke_fields.message, "Key Exchange Request")
        item:add(lke_fields.seq, mh(6, 2))
        item:add(lke_fields.key_exchange_data, mh(8, mh:len() - 8 - KE_REQUEST_OPTIONS))
        lke_mobility_options(mh, mh:len() - KE_REQUEST_OPTIONS, item)
        return "LKE Key Exchange Request seq " .. mh(6, 2):uint()
    elseif kind == p.ke_ack and mh:len() >= 12 then
        item = tree:add(mip6lke, mh)
        item:add(lke_fields.message, "Key Exchange Acknowledgement")
        item:add(lke_fields.status, mh(6, 1))
        item:add(lke_fields.seq, mh(8, 2))
        item:add(lke_fields.lifetime, mh(10, 2))
        lke_mobility_options(mh, 12, item)
        return string.format("LKE Key Exchange Ack seq %d status %d", mh(8, 2):uint(),
                             mh(6, 1):uint())
    elseif kind == p.finished and mh:len() >= 16 then
        item = tree:add(mip6lke, mh)
        item:add(lke_fields.message, "Finished")
        item:add(lke_fields.status, mh(6, 1))
        item:add(lke_fields.seq, mh(8, 2))
        item:add(lke_fields.lifetime, mh(10, 2))
        item:add(lke_fields.nonce, mh(12, 4))
        lke_mobility_options(mh, 16, item)
        return "LKE Finished seq " .. mh(8, 2):uint()
    elseif (kind == MH_BINDING_UPDATE or kind == MH_BINDING_ACK) and mh:len() >= 12 then
        item = tree:add(mip6lke, mh)
        item:add(lke_fields.message, kind == MH_BINDING_UPDATE and "Binding Update options"
                                     or "Binding Acknowledgement options")
        lke_mobility_options(mh, 12, item)
    end
    return nil
end

local ND_FIXED = {[133] = 8, [134] = 16, [135] = 24, [136] = 24}

local function lke_nd(message, tree)
    local p = mip6lke.prefs
    local kind = message(0, 1):uint()
    local offset = ND_FIXED[kind]
    if not offset then return nil end
    local dad_type = kind == 135 and p.dad_request or p.dad_reply
    local info
    while offset + 2 <= message:len() do
        local option, units = message(offset, 1):uint(), message(offset + 1, 1):uint()
        if units == 0 or offset + units * 8 > message:len() then return info end
        local value = message(offset, units * 8)
        if kind == 134 and option == p.capability and units * 8 >= 8 then
            local item = tree:add(mip6lke, value)
            item:add(lke_fields.message, "LKE Capability")
            item:add(lke_fields.max_lifetime, value(2, 2))
            item:add(lke_fields.public_key, value(4))
            info = "LKE Capability"
        elseif (kind == 135 or kind == 136) and option == dad_type and units == 6 then
            local item = tree:add(mip6lke, value)
            local name = kind == 135 and "DAD Authentication Request"
                         or "DAD Authentication Reply"
            item:add(lke_fields.dad, name)
            item:add(lke_fields.nonce, value(4, 4))
            item:add(lke_fields.ar_address, value(8, 16))
            item:add(lke_fields.mac, value(24, 20))
            info = name
        end
        offset = offset + units * 8
    end
    return info
end

function mip6lke.dissector(tvb, pinfo, tree)
    local info
    for _, field in ipairs({mh_field()}) do
        info = lke_mobility(field.range:tvb(), tree) or info
    end
    for _, field in ipairs({icmpv6_field()}) do
        info = lke_nd(field.range:tvb(), tree) or info
    end
    if info then pinfo.cols.info:append(" [" .. info .. "]") end
end

register_postdissector(mip6lke)
