"""bastion's own list of weak JWT HMAC secrets, written for this project.

Common words, keyboard walks, and the defaults that frameworks, tutorials and demo apps
ship (and that end up in production). ``--jwt-wordlist FILE`` adds more, one per line.
"""

from __future__ import annotations

_WORDS = """
secret secretkey secret_key secret-key SECRET SECRET_KEY Secret secret1 secret123
secrets mysecret my_secret my-secret mysecretkey my_secret_key my-secret-key
mysupersecret supersecret super_secret super-secret supersecretkey supersecret123
topsecret top_secret verysecret very_secret notsecret nosecret shhh shhhh shh hush
hidden private privatekey your-256-bit-secret your-384-bit-secret your-512-bit-secret
your_secret your-secret your_jwt_secret your-jwt-secret yoursecret your_secret_key your-
secret-key changeme change_me change-me changeit change_this change-this changethis
CHANGEME replace_me replaceme replace-me please_change_me pleasechangeme todo TODO fixme
FIXME jwt jwtsecret jwt_secret jwt-secret JWT_SECRET jwtkey jwt_key jwt-key jwtSecret
jwt_secret_key jwt-secret-key jwtsecretkey jwtpass jwt_token token tokensecret
token_secret token-secret auth authsecret auth_secret auth-secret authkey auth_key app
appsecret app_secret app-secret appkey app_key app-key application api apisecret
api_secret api-secret apikey api_key api-key signing signingkey signing_key signing-key
sign key key1 key123 mykey my_key thekey masterkey master_key master hmac hmackey
hmac_secret hs256 HS256 hs256secret s3cr3t s3cret secr3t 53cr37 S3cr3t p@ssw0rd password
password1 password123 Password Password1 passw0rd pass pass123 passwd admin admin123
administrator root toor default defaultsecret default_secret test test123 testing
testsecret test_secret tester demo demosecret demo_secret example examplesecret
example_secret sample samplesecret dev devsecret dev_secret development local
localsecret staging prod production qwerty qwerty123 qwertyuiop asdf asdfgh asdfghjkl
zxcvbn 123456 1234567 12345678 123456789 1234567890 12345 1234 123 111111 000000 654321
abc abc123 abcdef abcd1234 letmein welcome welcome1 monkey dragon iloveyou sunshine
princess football baseball trustno1 shadow hello helloworld hello_world foobar foo bar
baz spam eggs ninja batman superman starwars matrix server nodejs node express expressjs
flask django rails laravel spring springboot symfony nestjs koa fastapi starlette gin
echo phoenix keyboard cat keyboardcat keyboard cat keyboard_cat nyan secretsauce
secret_sauce magic magickey unicorn rainbow banana apple orange lemon potato tomato
cookie cookiesecret cookie_secret session sessionsecret session_secret session-secret
sessionkey session_key encryption encryptionkey encryption_key crypto cryptokey salt
pepper access accesstoken access_token access-token accesssecret refresh refreshsecret
refresh_secret refresh-token-secret refreshtokensecret refresh_token_secret
access_token_secret accesstokensecret access-token-secret oauth oauthsecret
client_secret clientsecret client-secret gofiber fiber golang gosecret rustsecret
javasecret pythonsecret python php supabase firebase auth0 okta keycloak cognito hasura
strapi directus parse strapi-secret hasura-secret jwt_secret_here your_jwt_secret_here
secret_here put-your-secret-here insert_secret_here enter_secret_here xxx xxxxxx
XXXXXXXX null none undefined nil empty blank 0 1 a aa aaa aaaa test1 test12 qwe
mysecretpassword mysecretjwt myjwtsecret my_jwt_secret my-jwt-secret thisismysecret
thisisasecret this_is_a_secret this-is-a-secret thisisthesecret itsasecret its_a_secret
dontcare whatever nothing something anything bastion gateway backend frontend
microservice service userservice authservice company companysecret corp acme acmesecret
contoso northwind gfg_jwt_secret_key shared shared_secret sharedsecret shared-secret
HelloWorld Secret123 Secret@123 secret@123 Admin@123 admin@123 P@ssw0rd
"""

_PHRASES = ("keyboard cat", "my secret", "secret key", "super secret", "your secret")

DEFAULT_SECRETS: tuple[str, ...] = (*dict.fromkeys(_WORDS.split()), *_PHRASES)


def expand(words: tuple[str, ...], extra: tuple[str, ...] = ()) -> list[str]:
    """The list to try: the user's words, the defaults, and simple variants of names."""
    out = dict.fromkeys([*words, *DEFAULT_SECRETS])
    for word in extra:  # e.g. the API's own host name: "acme" -> "acme-secret"
        for form in (word, f"{word}secret", f"{word}_secret", f"{word}-secret", f"{word}123"):
            out.setdefault(form)
    return list(out)
