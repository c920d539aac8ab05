"""Sign-in with the company directory (issue 13, deliverable 7) against a real OpenLDAP slapd that the
tests start with their own directory: bind as the service account, find the user, bind as the user, map
the user's groups to viewer/operator/admin, create the user at the first login; local accounts keep
working and cannot be taken over by a directory entry of the same name."""

import ldap
import pytest
from django.contrib.auth.models import User

from console.core.ldap_config import BACKEND, ldap_settings
from console.core.permissions import user_role
from tests.ldapd import SUFFIX, Slapd, require_slapd

pytestmark = pytest.mark.integration

GROUPS = f"ou=groups,{SUFFIX}"
PEOPLE = f"ou=people,{SUFFIX}"
SERVICE_DN = f"cn=console,ou=services,{SUFFIX}"


def person(uid, given, surname):
    return f"""dn: uid={uid},{PEOPLE}
objectClass: inetOrgPerson
uid: {uid}
cn: {given} {surname}
givenName: {given}
sn: {surname}
mail: {uid}@example.com
userPassword: {uid}-directory-pw
"""


def group(name, *uids):
    members = "".join(f"member: uid={uid},{PEOPLE}\n" for uid in uids)
    return f"dn: cn={name},{GROUPS}\nobjectClass: groupOfNames\ncn: {name}\n{members}"


LDIF = "\n".join([
    f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n",
    f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n",
    f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n",
    f"dn: ou=services,{SUFFIX}\nobjectClass: organizationalUnit\nou: services\n",
    f"dn: {SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: console\n"
    "userPassword: service-pw\n",
    person("alice", "Alice", "Admin"), person("oscar", "Oscar", "Operator"), person("vera", "Vera", "Viewer"),
    person("nora", "Nora", "Nobody"), person("admin", "Directory", "Admin"),
    group("console-admins", "alice", "admin"), group("console-operators", "oscar"),
    group("console-viewers", "vera", "alice"), group("everyone", "nora", "vera"),
])


@pytest.fixture(scope="module")
def slapd():
    require_slapd()
    with Slapd(LDIF) as server:
        yield server


@pytest.fixture
def directory(slapd, settings, tmp_path):
    password_file = tmp_path / "bind-password"
    password_file.write_text("service-pw\n")
    env = {
        "CONSOLE_LDAP_URL": slapd.url, "CONSOLE_LDAP_BIND_DN": SERVICE_DN,
        "CONSOLE_LDAP_BIND_PASSWORD_FILE": str(password_file),
        "CONSOLE_LDAP_USER_SEARCH_BASE": PEOPLE, "CONSOLE_LDAP_GROUP_SEARCH_BASE": GROUPS,
        "CONSOLE_LDAP_VIEWER_GROUP": f"cn=console-viewers,{GROUPS}",
        "CONSOLE_LDAP_OPERATOR_GROUP": f"cn=console-operators,{GROUPS}",
        "CONSOLE_LDAP_ADMIN_GROUP": f"CN=Console-Admins,{GROUPS}",
    }
    for name, value in ldap_settings(env).items():
        setattr(settings, name, value)
    settings.AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", BACKEND,
                                        "django.contrib.auth.backends.ModelBackend"]
    return slapd


def login(client, username, password):
    response = client.post("/login/", {"username": username, "password": password})
    return response.status_code == 302 and "_auth_user_id" in client.session


def test_a_directory_user_is_created_at_the_first_login_with_the_role_of_their_strongest_group(db, client,
                                                                                               directory):
    assert login(client, "alice", "alice-directory-pw")
    alice = User.objects.get(username="alice")
    assert (alice.first_name, alice.last_name, alice.email) == ("Alice", "Admin", "alice@example.com")
    assert user_role(alice) == "admin" and list(alice.groups.values_list("name", flat=True)) == ["admin"]
    assert not alice.has_usable_password()
    # The session works for the pages and the API like a local one.
    assert client.get("/").status_code == 200 and client.get("/api/v1/nodes/").status_code == 200
    client.logout()
    assert login(client, "oscar", "oscar-directory-pw")
    assert user_role(User.objects.get(username="oscar")) == "operator"
    client.logout()
    assert login(client, "vera", "vera-directory-pw")
    assert user_role(User.objects.get(username="vera")) == "viewer"


def test_a_wrong_password_or_a_user_in_no_role_group_is_refused_and_not_created(db, client, directory):
    assert not login(client, "vera", "wrong")
    assert not login(client, "nora", "nora-directory-pw")
    assert not login(client, "nobody-at-all", "x")
    assert not User.objects.filter(username__in=["vera", "nora", "nobody-at-all"]).exists()


def test_the_directory_decides_the_role_at_every_login(db, client, directory):
    assert login(client, "vera", "vera-directory-pw")
    assert user_role(User.objects.get(username="vera")) == "viewer"
    client.logout()
    operators = f"cn=console-operators,{GROUPS}"
    directory.modify(operators, [(ldap.MOD_ADD, "member", [f"uid=vera,{PEOPLE}".encode()])])
    try:
        assert login(client, "vera", "vera-directory-pw")
        vera = User.objects.get(username="vera")
        assert user_role(vera) == "operator" and list(vera.groups.values_list("name", flat=True)) == ["operator"]
    finally:
        directory.modify(operators, [(ldap.MOD_DELETE, "member", [f"uid=vera,{PEOPLE}".encode()])])


def test_local_accounts_keep_working_and_a_directory_entry_cannot_take_one_over(db, client, directory,
                                                                                  settings):
    local = User.objects.create_superuser("admin", password="local-admin-pw")
    assert not login(client, "admin", "admin-directory-pw")
    assert login(client, "admin", "local-admin-pw")
    assert client.session["_auth_user_id"] == str(local.pk)
    client.logout()
    # With the directory down, local accounts still sign in.
    settings.AUTH_LDAP_SERVER_URI = "ldap://127.0.0.1:1"
    assert login(client, "admin", "local-admin-pw")


def test_ldap_settings_need_search_bases_and_a_role_group():
    from console.core.env import EnvError

    assert ldap_settings({}) == {}
    with pytest.raises(EnvError, match="SEARCH_BASE"):
        ldap_settings({"CONSOLE_LDAP_URL": "ldap://x"})
    with pytest.raises(EnvError, match="CONSOLE_LDAP_VIEWER_GROUP"):
        ldap_settings({"CONSOLE_LDAP_URL": "ldap://x", "CONSOLE_LDAP_USER_SEARCH_BASE": "ou=p",
                       "CONSOLE_LDAP_GROUP_SEARCH_BASE": "ou=g"})
